// NestJS's own MQTT transport against our gateway, through a real broker.
// usage: NODE_PATH=<modules from .ci/nest-mqtt> node nest_mqtt.js mqtt://127.0.0.1:PORT
// - serves `math.sum` with a NestJS ServerMqtt (our gateway forwards to it);
// - calls `app.info` (served by our gateway) with a NestJS ClientMqtt and emits `audit.log`.
// Prints `READY` once the server listens, then `CLIENT <json reply>` (or `ERROR <text>`).
'use strict';
require('reflect-metadata');
const { NestFactory } = require('@nestjs/core');
const { Module, Controller } = require('@nestjs/common');
const { Transport, MessagePattern, ClientProxyFactory } = require('@nestjs/microservices');
const { firstValueFrom, timeout } = require('rxjs');

const url = process.argv[2];

class MathController {
  sum(numbers) {
    return { sum: numbers.reduce((a, b) => a + b, 0), servedBy: 'nest' };
  }
}
const method = Object.getOwnPropertyDescriptor(MathController.prototype, 'sum');
Object.defineProperty(
  MathController.prototype,
  'sum',
  Reflect.decorate([MessagePattern('math.sum')], MathController.prototype, 'sum', method) || method,
);
Reflect.decorate([Controller()], MathController);
class AppModule {}
Reflect.decorate([Module({ controllers: [MathController] })], AppModule);

async function main() {
  const app = await NestFactory.createMicroservice(AppModule, {
    transport: Transport.MQTT,
    options: { url },
    logger: false,
  });
  await app.listen();
  console.log('READY');
  const client = ClientProxyFactory.create({ transport: Transport.MQTT, options: { url } });
  await client.connect();
  try {
    const reply = await firstValueFrom(client.send('app.info', { from: 'nest' }).pipe(timeout(5000)));
    await firstValueFrom(client.emit('audit.log', { who: 'nest' }));
    console.log('CLIENT ' + JSON.stringify(reply));
  } catch (e) {
    console.log('ERROR ' + String(e && e.message ? e.message : e));
  }
  // Stays up (serving math.sum) until the test kills it.
  setTimeout(() => process.exit(0), 30000);
}

main().catch((e) => {
  console.log('ERROR ' + String(e && e.stack ? e.stack : e));
  process.exit(1);
});
