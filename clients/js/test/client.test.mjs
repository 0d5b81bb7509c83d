// The client under Node's test runner against the example gateways: every shared case with
// Node's global WebSocket, again with the `ws` package's constructor when it is installed
// (NESTFORGE_JS_TOOLS, as .ci/js-client sets up), and the checks only Node can make.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { connect, NestForgeError } from '../nestforge-edge.js';
import { cases, runCase } from './cases.mjs';
import { freePort, Gateway, startGateways } from './gateways.mjs';

const gateways = [];
const env = {};

before(async () => {
  const { events, push, restartable } = await startGateways();
  gateways.push(events, push, restartable);
  Object.assign(env, {
    events: events.url,
    push: push.url,
    unused: `ws://127.0.0.1:${await freePort()}/ws`,
    restartable: {
      url: restartable.url,
      kill: () => restartable.kill(),
      start: () => restartable.start(),
    },
  });
});

after(async () => {
  for (const gateway of gateways) await gateway.stop();
});

describe('global WebSocket', { skip: typeof WebSocket !== 'function' && 'Node < 22' }, () => {
  for (const c of cases) test(c.name, { timeout: 30000 }, () => runCase(c, env));
});

function wsPackage() {
  const tools = process.env.NESTFORGE_JS_TOOLS;
  if (!tools) return null;
  try {
    return createRequire(join(tools, 'package.json'))('ws');
  } catch {
    return null;
  }
}

const ws = wsPackage();
describe('the ws package as options.WebSocket', { skip: !ws && 'ws not installed' }, () => {
  for (const c of cases) {
    test(c.name, { timeout: 30000 }, () => runCase(c, env, { WebSocket: ws }));
  }
});

// Node's own WebSocket where there is one (Node >= 22), else the ws package's.
const Socket = globalThis.WebSocket ?? ws;

describe('Node only', { skip: !Socket && 'no WebSocket' }, () => {
  test('an invalid URL throws at connect()', () => {
    assert.throws(() => connect('not a url', { WebSocket: Socket }), { name: 'SyntaxError' });
  });

  test('without a WebSocket constructor connect() throws a TypeError', () => {
    const saved = globalThis.WebSocket;
    globalThis.WebSocket = undefined;
    try {
      assert.throws(() => connect(env.push), TypeError);
    } finally {
      globalThis.WebSocket = saved;
    }
  });

  test('NestForgeError carries code, pattern, detail and cause', () => {
    const cause = new Error('why');
    const error = new NestForgeError('bad_payload', 'Failed', 'app.x', 'serde says', cause);
    assert.ok(error instanceof Error);
    assert.deepEqual(
      [error.name, error.code, error.message, error.pattern, error.detail, error.cause],
      ['NestForgeError', 'bad_payload', 'Failed', 'app.x', 'serde says', cause],
    );
    assert.equal('detail' in new NestForgeError('timeout', 'm', 'p'), false);
  });

  test('a throwing push handler is reported asynchronously and the others still run', async () => {
    const client = connect(env.push, { WebSocket: Socket });
    try {
      const calls = [];
      client.on('boom', () => {
        throw new Error('handler failed');
      });
      client.on('boom', (payload) => calls.push(payload));
      // node:test fails the running test on an uncaught exception: its listeners step
      // aside while this one takes the expected exception.
      const runner = process.listeners('uncaughtException');
      process.removeAllListeners('uncaughtException');
      let error;
      try {
        const reported = new Promise((resolve) => process.once('uncaughtException', resolve));
        await client.send('push.me', { pattern: 'boom', payload: 1 });
        error = await reported;
      } finally {
        for (const listener of runner) process.on('uncaughtException', listener);
      }
      assert.equal(error.message, 'handler failed');
      assert.deepEqual(calls, [1]);
      assert.equal(await client.send('app.sleep', 1), 1);
    } finally {
      client.close();
    }
  });

  test('the gateways exit 0 on SIGINT and SIGTERM', async () => {
    for (const signal of ['SIGINT', 'SIGTERM']) {
      for (const name of ['events_gateway', 'push_gateway']) {
        const gateway = await Gateway.start(name);
        const client = connect(gateway.url, { WebSocket: Socket });
        await client.ready;
        const closed = new Promise((resolve) => client.addEventListener('close', resolve, { once: true }));
        assert.equal(await gateway.stop(signal), 0, `${name} on ${signal}`);
        assert.equal((await closed).code, 1001, 'going away');
        client.close();
      }
    }
  });
});
