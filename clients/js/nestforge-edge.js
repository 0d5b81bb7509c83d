// A client for nestforge-edge gateways: requests answered by id, fire-and-forget events,
// server pushes, reconnection with backoff and a bounded queue for what is sent meanwhile.
// One dependency-free ES module for browsers, Node >= 22 (global WebSocket) or any
// WebSocket-compatible constructor passed as `options.WebSocket`. Durations are in ms.

const OPEN = 1; // WebSocket.OPEN, also for constructors that do not define it

// Backoff of the reconnect attempts: min * factor^n, capped at max, each delay shortened by
// up to `jitter` of itself at random so that clients cut off together do not return together.
const RECONNECT = { min: 250, max: 30000, factor: 2, jitter: 0.5 };

/** Why a request or event failed: the server's error code, or the client's own. */
export class NestForgeError extends Error {
  constructor(code, message, pattern, detail, cause) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'NestForgeError';
    this.code = code;
    this.pattern = pattern;
    if (detail !== undefined) this.detail = detail;
  }
}

export class NestForgeClient extends EventTarget {
  #url;
  #protocols;
  #WebSocket;
  #timeout;
  #maxQueue;
  #backoff; // null: no reconnect
  #ws = null; // the current socket, opening or open
  #seq = 0; // the last request id
  #pending = new Map(); // id -> request written and not yet answered
  #queue = new Set(); // requests and events not yet written, in order
  #handlers = new Map(); // pattern -> Set of push handlers
  #attempt = 0; // reconnect attempts since the last open
  #retry; // the reconnect timer
  #closed = false;
  #ready; // [resolve, reject] of `ready`

  constructor(url, options = {}) {
    super();
    const { timeout = 10000, reconnect, maxQueue = 256, protocols } = options;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.#WebSocket) throw new TypeError('No WebSocket: pass options.WebSocket');
    this.#url = url;
    this.#protocols = protocols;
    this.#timeout = timeout;
    this.#maxQueue = maxQueue;
    this.#backoff = reconnect === false ? null : { ...RECONNECT, ...reconnect };
    this.ready = new Promise((resolve, reject) => (this.#ready = [resolve, reject]));
    this.ready.catch(() => {}); // a client nobody awaits must not leave an unhandled rejection
    this.#connect(); // an invalid URL throws here, to the caller
  }

  /** Whether a connection is open now. */
  get connected() {
    return this.#ws?.readyState === OPEN;
  }

  /** Sends a request; resolves with the reply's payload. */
  send(pattern, payload, options) {
    return this.#submit('message', pattern, payload, options);
  }

  /** Sends an event (no reply); resolves once it is written to the socket. */
  emit(pattern, payload, options) {
    return this.#submit('event', pattern, payload, options);
  }

  /** Calls `handler(payload, frame)` for each push of `pattern`; returns the unsubscribe. */
  on(pattern, handler) {
    let set = this.#handlers.get(pattern);
    if (!set) this.#handlers.set(pattern, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
      if (!set.size && this.#handlers.get(pattern) === set) this.#handlers.delete(pattern);
    };
  }

  /** Ends the client for good: what is queued or awaiting a reply rejects with `closed`. */
  close(code = 1000, reason) {
    if (this.#closed) return;
    this.#end('client closed');
    this.#ws?.close(code, reason);
  }

  #connect() {
    const ws = this.#protocols
      ? new this.#WebSocket(this.#url, this.#protocols)
      : new this.#WebSocket(this.#url);
    let opened = false;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      opened = true;
      this.#open();
    };
    ws.onmessage = (event) => this.#receive(event.data);
    // Browsers follow an error with a close event. Node's own WebSocket (undici, at least up
    // to Node 22.x) may not when the connection fails before it opens, and stays CONNECTING:
    // a failed attempt is therefore taken from the error. (The `ws` package also needs a
    // listener, or its emitter throws.)
    ws.onerror = () => opened || this.#lost(ws, false, {});
    ws.onclose = (event) => this.#lost(ws, opened, event);
    this.#ws = ws;
  }

  #open() {
    this.#attempt = 0;
    // What waited goes first, in order, before anything the listeners below may send.
    for (const item of this.#queue) this.#write(item);
    this.#ready[0]();
    this.#fire('open');
  }

  #lost(ws, opened, { code, reason }) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    // Written requests are never sent again: the server may have run them.
    for (const item of this.#pending.values()) {
      item.stop('disconnected', 'connection lost before the reply');
    }
    if (opened) this.#fire('close', { code, reason });
    if (this.#closed) return;
    if (!this.#backoff) return this.#end('connection lost and reconnect is off');
    const { min, max, factor, jitter } = this.#backoff;
    const delay = Math.round(
      Math.min(max, min * factor ** this.#attempt++) * (1 - jitter * Math.random()),
    );
    this.#fire('reconnecting', { attempt: this.#attempt, delay });
    this.#retry = setTimeout(() => {
      try {
        this.#connect();
      } catch {
        this.#lost(null, false, {}); // a failed attempt like any other (this.#ws is null)
      }
    }, delay);
  }

  #end(why) {
    this.#closed = true;
    clearTimeout(this.#retry);
    for (const item of [...this.#pending.values(), ...this.#queue]) item.stop('closed', why);
    this.#ready[1](new NestForgeError('closed', why));
  }

  // One request or event from call to settlement: queued, then written, then (a request)
  // answered; a timeout or abort at any point before that ends it.
  #submit(kind, pattern, payload, { timeout = this.#timeout, signal, metadata } = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        this.#pending.delete(item.id);
        this.#queue.delete(item);
      };
      const item = {
        resolve(value) {
          settle();
          resolve(value);
        },
        fail(code, message, detail, cause) {
          settle();
          reject(new NestForgeError(code, message, pattern, detail, cause));
        },
        // The client's own failures name the pattern; the server's messages already do.
        stop: (code, why, cause) => item.fail(code, `${pattern}: ${why}`, undefined, cause),
      };
      const abort = () => item.stop('aborted', 'aborted', signal.reason);
      if (this.#closed) return item.stop('closed', 'client closed');
      if (signal?.aborted) return abort();
      const frame = { kind, pattern, payload };
      if (metadata) frame.metadata = { values: metadata };
      if (kind === 'message') frame.id = item.id = ++this.#seq;
      item.text = JSON.stringify(frame); // throws (rejects) on a cycle or a BigInt
      // Longer than setTimeout's 32-bit range would fire at once: treated as no timeout.
      if (timeout > 0 && timeout < 2 ** 31) {
        timer = setTimeout(() => item.stop('timeout', `no reply within ${timeout} ms`), timeout);
      }
      signal?.addEventListener('abort', abort);
      if (this.connected) this.#write(item);
      else if (this.#queue.size < this.#maxQueue) this.#queue.add(item);
      else item.stop('queue_full', `disconnected and ${this.#maxQueue} already queued`);
    });
  }

  #write(item) {
    this.#ws.send(item.text);
    this.#queue.delete(item);
    if (item.id) this.#pending.set(item.id, item);
    else item.resolve();
  }

  // Never throws: a frame that is no JSON becomes a `text` event, one that is neither a
  // subscribed push nor the reply to a pending request an `unmatched` event.
  #receive(data) {
    let frame;
    try {
      frame = JSON.parse(typeof data === 'string' ? data : (data = new TextDecoder().decode(data)));
    } catch {
      return this.#fire('text', { data });
    }
    if (frame?.kind === 'event' && this.#handlers.has(frame.pattern)) {
      for (const handler of [...this.#handlers.get(frame.pattern)]) {
        try {
          handler(frame.payload, frame);
        } catch (error) {
          setTimeout(() => {
            throw error; // reported as an event listener's error is; the others still run
          });
        }
      }
      return;
    }
    const item = frame?.kind === undefined && this.#pending.get(frame?.id);
    if (!item) return this.#fire('unmatched', { data: frame });
    if (frame.error == null) return item.resolve(frame.payload);
    const { code = 'internal', message = String(frame.error), detail } = Object(frame.error);
    item.fail(String(code), message, detail);
  }

  #fire(type, fields) {
    this.dispatchEvent(Object.assign(new Event(type), fields));
  }
}

/** Opens a client on `url` (see `NestForgeClient`). */
export function connect(url, options) {
  return new NestForgeClient(url, options);
}
