// The client's test cases, shared by Node (client.test.mjs) and the browser (browser.html).
// Each case gets an `env`:
//   events      ws:// URL of examples/events_gateway
//   push        ws:// URL of examples/push_gateway (the subprotocol `nestforge`)
//   restartable { url, kill(), start() }: a push_gateway of its own, killed and restarted
//   unused      ws:// URL of a port nothing listens on
//   connect     the module's `connect`, with the run's options (a WebSocket constructor) and
//               every client it opens closed when the case ends
import { connect, NestForgeError, NestForgeClient } from '../nestforge-edge.js';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function ok(condition, message) {
  if (!condition) throw new Error(message);
}

function same(actual, expected, message) {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  ok(a === e, `${message}: got ${a}, expected ${e}`);
}

/** Resolves with `promise`'s value, or rejects when it takes longer than `ms`. */
function within(ms, promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The NestForgeError `promise` rejects with, checked to carry `code` and `pattern`. */
async function rejects(promise, code, pattern) {
  let value;
  try {
    value = await within(5000, promise, `${pattern} (${code})`);
  } catch (error) {
    ok(error instanceof NestForgeError, `${pattern}: not a NestForgeError: ${error}`);
    same(error.code, code, `${pattern}: code`);
    same(error.pattern, pattern, `${pattern}: pattern`);
    ok(typeof error.message === 'string' && error.message, `${pattern}: message`);
    return error;
  }
  throw new Error(`${pattern}: resolved with ${JSON.stringify(value)}, expected ${code}`);
}

/** The next `type` event of `target` that passes `filter`. */
function next(target, type, filter = () => true, ms = 5000) {
  return within(
    ms,
    new Promise((resolve) => {
      const listener = (event) => {
        if (!filter(event)) return;
        target.removeEventListener(type, listener);
        resolve(event);
      };
      target.addEventListener(type, listener);
    }),
    `event ${type}`,
  );
}

/** Pushes of `pattern` that `client` receives, collected. */
function collect(client, pattern) {
  const got = [];
  got.off = client.on(pattern, (payload) => got.push(payload));
  return got;
}

async function until(condition, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!condition()) {
    ok(Date.now() < end, `${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

export const cases = [
  {
    name: 'replies resolve with their payload; ready resolves on open',
    async run(env) {
      const client = env.connect(env.events);
      ok(client instanceof NestForgeClient && client instanceof EventTarget, 'client class');
      await within(5000, client.ready, 'ready');
      ok(client.connected, 'connected after ready');
      same(
        await client.send('app.info'),
        { app_name: 'NestForge WebSockets', transport: 'websocket' },
        'app.info',
      );
      const push = env.connect(env.push);
      same(
        await push.send('app.echo', { n: [1, 'two'] }, { metadata: { tenant: 'acme', k: 'v' } }),
        { metadata: { values: { k: 'v', tenant: 'acme' } }, payload: { n: [1, 'two'] } },
        'app.echo with metadata',
      );
      same(await push.send('app.echo'), { metadata: { values: {} }, payload: null }, 'no payload');
    },
  },
  {
    name: 'the connect banner arrives as a text event',
    async run(env) {
      const client = env.connect(env.events);
      const banner = await next(client, 'text');
      ok(banner.data.startsWith('connected:NestForge WebSockets; send {'), banner.data);
    },
  },
  {
    name: 'requests made before the first open wait and go out on open',
    async run(env) {
      const client = env.connect(env.events);
      ok(!client.connected, 'not connected yet');
      const [info, written] = [client.send('app.info'), client.emit('app.ping', { x: 1 })];
      same((await info).transport, 'websocket', 'queued request answered');
      same(await written, undefined, 'queued event written');
    },
  },
  {
    name: 'error codes reject the request with the same id',
    async run(env) {
      const events = env.connect(env.events);
      const push = env.connect(env.push);
      // All at once: each error frame must settle its own request and no other.
      const results = [
        rejects(events.send('nope', 1), 'unknown_pattern', 'nope'),
        rejects(events.send('app.info', { unexpected: true }), 'bad_payload', 'app.info'),
        events.send('app.info'),
        rejects(push.send('app.fail', null), 'handler_error', 'app.fail'),
        rejects(push.send('app.sleep', 'soon'), 'bad_payload', 'app.sleep'),
        rejects(push.send('app.admin'), 'forbidden', 'app.admin'),
        rejects(push.send('no.such.pattern'), 'unknown_pattern', 'no.such.pattern'),
        push.send('app.sleep', 30),
      ];
      const [unknown, badPayload, info, failed, badSleep, forbidden, , slept] =
        await Promise.all(results);
      same(unknown.message, 'No message handler registered for `nope`', 'unknown message');
      same(badPayload.message, 'Failed to deserialize message payload', 'bad payload message');
      ok(typeof badPayload.detail === 'string' && badPayload.detail.length, 'detail present');
      ok(typeof badSleep.detail === 'string', 'detail of app.sleep');
      same(info.transport, 'websocket', 'the good request between them');
      same(failed.message, 'app.fail always fails', 'handler error message');
      same(failed.detail, undefined, 'no detail when the server sent none');
      same(forbidden.message, 'Missing required role `admin`', 'forbidden message');
      same(slept, 30, 'app.sleep');
      ok(failed instanceof Error && failed.name === 'NestForgeError', 'an Error');
    },
  },
  {
    name: 'a failed event (no id) comes back as an error: text event',
    async run(env) {
      const client = env.connect(env.events);
      await client.ready;
      const text = next(client, 'text', (e) => e.data.startsWith('error:'));
      same(await client.emit('app.ping', { x: 1 }), undefined, 'event written');
      await client.emit('nope');
      same((await text).data, 'error:No event handler registered for `nope`', 'error text');
    },
  },
  {
    name: '100 concurrent requests are matched by id, replies out of order',
    async run(env) {
      const client = env.connect(env.push);
      await client.ready;
      const order = [];
      // 0..99 ms in a scrambled order (37 is prime to 100): replies leave as the sleeps end.
      const requests = Array.from({ length: 100 }, (_, i) => {
        const ms = (i * 37) % 100;
        return client.send('app.sleep', ms).then((reply) => {
          order.push(i);
          return [ms, reply];
        });
      });
      for (const [ms, reply] of await within(10000, Promise.all(requests), '100 replies')) {
        same(reply, ms, 'each reply is its own');
      }
      ok(
        order.some((i, k) => i !== k),
        'replies came back out of order',
      );
    },
  },
  {
    name: 'a request times out (per call and by default); its late reply is ignored',
    async run(env) {
      const client = env.connect(env.push, { timeout: 80 });
      await client.ready;
      const started = Date.now();
      const late = next(client, 'unmatched', (e) => e.data?.pattern === 'app.sleep', 3000);
      const error = await rejects(client.send('app.sleep', 400, { timeout: 50 }), 'timeout', 'app.sleep');
      ok(Date.now() - started < 390, `timed out after ${Date.now() - started} ms`);
      ok(/50 ms/.test(error.message), error.message);
      await rejects(client.send('app.sleep', 400), 'timeout', 'app.sleep'); // the default, 80
      same((await late).data.payload, 400, 'the late reply surfaced as unmatched');
      same(await client.send('app.sleep', 1, { timeout: 0 }), 1, 'timeout 0: none');
      same(await client.send('app.echo', 'after'), { metadata: { values: {} }, payload: 'after' }, 'still works');
    },
  },
  {
    name: 'an AbortSignal aborts a request',
    async run(env) {
      const client = env.connect(env.push);
      await client.ready;
      const controller = new AbortController();
      const pending = client.send('app.sleep', 500, { signal: controller.signal });
      await sleep(20);
      const reason = new Error('user left');
      controller.abort(reason);
      const error = await rejects(pending, 'aborted', 'app.sleep');
      same(error.cause === reason, true, 'the reason as cause');
      const already = AbortSignal.abort();
      await rejects(client.send('app.info', null, { signal: already }), 'aborted', 'app.info');
      await rejects(client.emit('app.ping', null, { signal: already }), 'aborted', 'app.ping');
      await rejects(client.send('app.sleep', 500, { signal: AbortSignal.timeout(30) }), 'aborted', 'app.sleep');
      // A signal that never fires is let go of when the request settles.
      same(await client.send('app.sleep', 5, { signal: new AbortController().signal }), 5, 'unaborted');
    },
  },
  {
    name: 'pushes reach one connection, a room, all; on() unsubscribes',
    async run(env) {
      const [a, b] = [env.connect(env.push), env.connect(env.push)];
      const [aRoom, bRoom] = [collect(a, 'room.news'), collect(b, 'room.news')];
      const [aAll, bAll] = [collect(a, 'all.news'), collect(b, 'all.news')];
      const [aMe, bMe] = [collect(a, 'me.news'), collect(b, 'me.news')];
      same(await a.send('room.join', 'kitchen'), true, 'joined');
      same(
        await b.send('push.room', { room: 'kitchen', pattern: 'room.news', payload: { t: 21.5 } }),
        1,
        'delivered to the room',
      );
      await until(() => aRoom.length === 1, 'room push');
      ok((await b.send('push.all', { pattern: 'all.news', payload: 'hi' })) >= 2, 'to all');
      await until(() => aAll.length === 1 && bAll.length === 1, 'push to all');
      same(await b.send('push.me', { pattern: 'me.news', payload: [1] }), true, 'push.me');
      await until(() => bMe.length === 1, 'push to one');
      await a.emit('push.echo', { pattern: 'me.news', payload: 'echo' });
      await until(() => aMe.length === 1, 'push after an event');
      same([aRoom, bRoom, aAll, bAll, aMe, bMe], [[{ t: 21.5 }], [], ['hi'], ['hi'], ['echo'], [[1]]], 'who got what');
      // A frame is handed over whole as the second argument.
      const frame = new Promise((resolve) => a.on('framed', (_, f) => resolve(f)));
      await a.send('push.me', { pattern: 'framed', payload: 7 });
      same(await within(3000, frame, 'framed push'), { kind: 'event', pattern: 'framed', payload: 7 }, 'frame');
      aMe.off();
      const unmatched = next(a, 'unmatched', (e) => e.data?.pattern === 'me.news');
      await a.send('push.me', { pattern: 'me.news', payload: 'gone' });
      await unmatched;
      same(aMe, ['echo'], 'no call after unsubscribing');
    },
  },
  {
    name: 'frames that match nothing are surfaced, never thrown',
    async run(env) {
      const client = env.connect(env.push);
      await client.ready;
      const texts = [];
      const unmatched = [];
      client.addEventListener('text', (e) => texts.push(e.data));
      client.addEventListener('unmatched', (e) => unmatched.push(e.data));
      same(await client.send('push.garbage'), true, 'push.garbage');
      await until(() => texts.length + unmatched.length >= 13, 'every garbage frame');
      same(texts, ['not json {'], 'the non-JSON frame');
      ok(unmatched.some((f) => f?.id === 987654321), 'the reply to no request');
      ok(unmatched.some((f) => f?.kind === 'event' && f.pattern === 'nobody.listens'), 'unheard push');
      same(await client.send('app.sleep', 3), 3, 'still serving');
    },
  },
  {
    name: 'reconnect: written requests reject disconnected, queued ones go out after it',
    async run(env) {
      const server = env.restartable;
      await server.start(); // (again, if an earlier run left it stopped)
      const client = env.connect(server.url, { reconnect: { min: 50, max: 200 }, timeout: 20000 });
      const seen = [];
      for (const type of ['open', 'close', 'reconnecting']) {
        client.addEventListener(type, (e) => seen.push(type + (type === 'reconnecting' ? e.attempt : '')));
      }
      const pushes = collect(client, 'back');
      await client.ready;
      const inFlight = rejects(client.send('app.sleep', 5000), 'disconnected', 'app.sleep');
      same(await client.send('app.sleep', 1), 1, 'written before the kill');
      const closed = next(client, 'close');
      await server.kill();
      await inFlight;
      const close = await closed;
      ok(typeof close.code === 'number', 'close code');
      ok(!client.connected, 'not connected while the server is down');
      await next(client, 'reconnecting', (e) => e.attempt >= 2); // refused at least once
      const queued = client.send('app.echo', 'queued');
      const event = client.emit('push.echo', { pattern: 'back', payload: 'queued event' });
      let settled = false;
      queued.finally(() => (settled = true));
      await sleep(100);
      ok(!settled, 'a queued request waits for the connection');
      await server.start();
      same(await within(5000, queued, 'queued request'), { metadata: { values: {} }, payload: 'queued' }, 'queued');
      same(await event, undefined, 'queued event written');
      await until(() => pushes.length === 1, 'the queued event ran');
      ok(client.connected, 'connected again');
      same(seen.filter((s) => s === 'open').length, 2, 'open twice');
      same(seen[1], 'close', 'close after the first open');
      same(seen[2], 'reconnecting1', 'first attempt numbered 1');
      same(await client.send('app.sleep', 2), 2, 'serving after the reconnect');
    },
  },
  {
    name: 'while disconnected the queue is bounded; queued items time out or abort',
    async run(env) {
      const client = env.connect(env.unused, { maxQueue: 2, reconnect: { min: 20, max: 50 } });
      const reconnecting = next(client, 'reconnecting');
      const started = Date.now();
      const first = rejects(client.send('app.info', null, { timeout: 150 }), 'timeout', 'app.info');
      const second = rejects(client.emit('app.ping', null, { timeout: 60000 }), 'closed', 'app.ping');
      await rejects(client.send('app.info'), 'queue_full', 'app.info');
      await rejects(client.emit('app.ping'), 'queue_full', 'app.ping');
      await reconnecting;
      await first; // makes room
      ok(Date.now() - started >= 140, 'the queued request waited for its timeout');
      const controller = new AbortController();
      const third = rejects(client.send('app.echo', null, { signal: controller.signal }), 'aborted', 'app.echo');
      await rejects(client.send('app.info'), 'queue_full', 'app.info');
      controller.abort();
      await third;
      client.close();
      await second;
      await rejects(client.ready, 'closed', undefined);
    },
  },
  {
    name: 'maxQueue 0 queues nothing; reconnect false ends the client on the first loss',
    async run(env) {
      const unqueued = env.connect(env.unused, { maxQueue: 0 });
      await rejects(unqueued.send('app.info'), 'queue_full', 'app.info');
      const once = env.connect(env.unused, { reconnect: false });
      const queued = rejects(once.send('app.info'), 'closed', 'app.info');
      await rejects(once.ready, 'closed', undefined);
      await queued;
      await rejects(once.send('app.info'), 'closed', 'app.info');
      const live = env.connect(env.push, { reconnect: false });
      await live.ready;
      same(await live.send('app.sleep', 1), 1, 'works while connected');
    },
  },
  {
    name: 'close() rejects what is pending and ends the client for good',
    async run(env) {
      const client = env.connect(env.push);
      await client.ready;
      const pending = rejects(client.send('app.sleep', 1000), 'closed', 'app.sleep');
      await sleep(20);
      const closed = next(client, 'close');
      const reconnecting = [];
      client.addEventListener('reconnecting', () => reconnecting.push(1));
      client.close();
      await pending;
      await rejects(client.send('app.info'), 'closed', 'app.info');
      await rejects(client.emit('app.ping'), 'closed', 'app.ping');
      same((await closed).code, 1000, 'close code');
      ok(!client.connected, 'not connected');
      client.close(); // twice is harmless
      await sleep(300);
      same(reconnecting.length, 0, 'no reconnect after close()');
    },
  },
  {
    name: 'protocols carry a bearer token',
    async run(env) {
      const holder = env.connect(env.push, { protocols: ['nestforge', 'bearer.edge-token'] });
      same(await holder.send('auth.whoami'), 'token-holder', 'identity from the token');
      same(await holder.send('app.admin'), 'token-holder', 'its role admits it');
      const anonymous = env.connect(env.push, { protocols: ['nestforge'] });
      same(await anonymous.send('auth.whoami'), null, 'anonymous');
      const refused = env.connect(env.push, { protocols: ['nestforge', 'bearer.wrong'], reconnect: false });
      await rejects(refused.ready, 'closed', undefined);
    },
  },
];

/** Runs `test` with a connect that closes every client it opened once the case ends. */
export async function runCase(test, env, options = {}) {
  const clients = [];
  const tracked = {
    ...env,
    connect(url, more) {
      const client = connect(url, { ...options, ...more });
      clients.push(client);
      return client;
    },
  };
  try {
    await within(20000, test.run(tracked), test.name);
  } finally {
    for (const client of clients) client.close();
  }
}
