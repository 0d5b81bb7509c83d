// Type-checked against nestforge-edge.d.ts (tsc --noEmit --strict); never run.
import {
  connect,
  NestForgeClient,
  NestForgeError,
  type ClientOptions,
  type NestForgeErrorCode,
  type PushFrame,
} from '../nestforge-edge.js';

interface AppInfo {
  app_name: string;
  transport: string;
}

const options: ClientOptions = {
  timeout: 5_000,
  reconnect: { min: 500, max: 10_000, factor: 1.5, jitter: 0.3 },
  maxQueue: 64,
  protocols: ['nestforge', 'bearer.edge-token'],
  WebSocket,
};

export async function usage(): Promise<void> {
  const client: NestForgeClient = connect('ws://127.0.0.1:3003/ws', options);
  await client.ready;

  const info = await client.send<AppInfo>('app.info');
  const name: string = info.app_name;
  const untyped: unknown = await client.send('app.echo', { n: 1 });

  const controller = new AbortController();
  await client.send<number>('app.sleep', 100, {
    timeout: 1_000,
    signal: controller.signal,
    metadata: { tenant: 'acme' },
  });
  const written: void = await client.emit('app.ping', { x: 1 }, { metadata: { k: 'v' } });

  const off: () => void = client.on<{ celsius: number }>('sensor.reading', (reading, frame) => {
    const celsius: number = reading.celsius;
    const pattern: string = frame.pattern;
    const typed: PushFrame<{ celsius: number }> = frame;
    void [celsius, pattern, typed];
  });
  off();

  client.addEventListener('open', (event: Event) => void event.type);
  client.addEventListener('close', (event) => {
    const code: number = event.code;
    const reason: string = event.reason;
    void [code, reason];
  });
  client.addEventListener('reconnecting', (event) => {
    const delay: number = event.delay + event.attempt;
    void delay;
  });
  client.addEventListener('text', (event) => {
    const banner: string = event.data;
    void banner;
  });
  client.addEventListener('unmatched', (event) => void (event.data as unknown));
  client.addEventListener('custom', () => {});

  try {
    await client.send('nope');
  } catch (error) {
    if (error instanceof NestForgeError) {
      const code: NestForgeErrorCode = error.code;
      const pattern: string | undefined = error.pattern;
      const detail: string | undefined = error.detail;
      if (code === 'unknown_pattern' || code === 'app_defined') void [pattern, detail];
    }
  }

  // Misuse the declarations must refuse:
  // @ts-expect-error a reply typed as number is no string
  const wrong: string = await client.send<number>('app.sleep', 1);
  // @ts-expect-error metadata values are strings
  await client.send('app.echo', null, { metadata: { n: 1 } });
  // @ts-expect-error reconnect is options or false
  connect('ws://127.0.0.1/ws', { reconnect: true });
  // @ts-expect-error a close event's code is a number
  client.addEventListener('close', (event) => event.code.toUpperCase());
  // @ts-expect-error emit resolves with nothing
  const nothing: string = await client.emit('app.ping');

  const connected: boolean = client.connected;
  void [name, untyped, written, connected, wrong, nothing];
  client.close();
  new NestForgeClient(new URL('ws://127.0.0.1/ws'), { reconnect: false }).close(4000, 'bye');
}
