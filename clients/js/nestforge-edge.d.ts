// Types of nestforge-edge.js, the client for nestforge-edge gateways. Durations are in ms.

/** The codes a NestForgeError carries: the server's, the client's own, or an application's. */
export type NestForgeErrorCode =
  // sent by the server in an error frame
  | 'bad_frame'
  | 'unknown_pattern'
  | 'bad_payload'
  | 'handler_error'
  | 'provider_missing'
  | 'forbidden'
  | 'internal'
  // the client's own
  | 'timeout'
  | 'aborted'
  | 'disconnected'
  | 'closed'
  | 'queue_full'
  // application-defined codes
  | (string & {});

/** Why a request or event failed. */
export class NestForgeError extends Error {
  constructor(
    code: NestForgeErrorCode,
    message: string,
    pattern?: string,
    detail?: string,
    cause?: unknown,
  );
  readonly name: 'NestForgeError';
  /**
   * The server's error code, or the client's: `timeout` (no reply in time, or still queued),
   * `aborted` (the AbortSignal fired), `disconnected` (the connection was lost after the
   * request was written: it may have run, and is not sent again), `closed` (the client was
   * closed, or lost its connection with reconnect off, before the request was written or
   * answered), `queue_full` (disconnected, and `maxQueue` items already wait).
   */
  readonly code: NestForgeErrorCode;
  /** The request's pattern (absent on `ready`'s rejection). */
  readonly pattern: string | undefined;
  /** The server's detail, when it sent one (e.g. serde's reason for `bad_payload`). */
  readonly detail?: string;
  /** The AbortSignal's reason, for `aborted`. */
  readonly cause?: unknown;
}

/** Any constructor with the browser WebSocket's interface (e.g. the `ws` package's). */
export type WebSocketConstructor = new (url: string | URL, protocols?: string | string[]) => object;

/** Reconnect backoff: attempt n (from 0) waits min(max, min * factor^n), shortened by up to
 * `jitter` (0..1) of itself at random. */
export interface ReconnectOptions {
  /** First delay. Default 250. */
  min?: number;
  /** Longest delay. Default 30,000. */
  max?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Random share taken off each delay, 0..1. Default 0.5. */
  jitter?: number;
}

export interface ClientOptions {
  /** Default timeout of `send` and `emit`, from the call (queued time included); 0 or
   * Infinity for none. Default 10,000. */
  timeout?: number;
  /** Backoff between reconnect attempts, or `false` to end the client (as `close()`) when
   * the connection is lost or cannot be opened. Default: the defaults of ReconnectOptions. */
  reconnect?: ReconnectOptions | false;
  /** How many requests and events may wait while disconnected; beyond it they reject with
   * `queue_full`. Default 256. */
  maxQueue?: number;
  /** Subprotocols to offer, e.g. `['nestforge', 'bearer.<token>']`; the server must select
   * one of them (nestforge-edge: `WebSocketConfig::protocols`). */
  protocols?: string | string[];
  /** The WebSocket constructor. Default: `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
}

export interface SendOptions {
  /** Overrides the client's `timeout`; 0 or Infinity for none. */
  timeout?: number;
  /** Rejects with `aborted` when it fires (the server may still run a request already
   * written). */
  signal?: AbortSignal;
  /** Sent as the frame's `metadata.values`. */
  metadata?: Record<string, string>;
}

export type EmitOptions = SendOptions;

/** A push as it arrived: `{"kind":"event","pattern":..,"payload":..}`. */
export interface PushFrame<T = unknown> {
  kind: 'event';
  pattern: string;
  payload: T;
  [field: string]: unknown;
}

export type PushHandler<T = unknown> = (payload: T, frame: PushFrame<T>) => void;

/** `close`: an open connection ended. */
export interface NestForgeCloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
}

/** `reconnecting`: the next attempt starts after `delay`. */
export interface NestForgeReconnectingEvent extends Event {
  /** 1 for the first attempt after an open connection was lost. */
  readonly attempt: number;
  readonly delay: number;
}

/** `text`: a frame that is not JSON (the connect banner, an `error:<message>` text). */
export interface NestForgeTextEvent extends Event {
  readonly data: string;
}

/** `unmatched`: a JSON frame that is neither the reply to a pending request nor a push with
 * a handler (e.g. the reply to a request that timed out). */
export interface NestForgeUnmatchedEvent extends Event {
  readonly data: unknown;
}

export interface NestForgeClientEventMap {
  open: Event;
  close: NestForgeCloseEvent;
  reconnecting: NestForgeReconnectingEvent;
  text: NestForgeTextEvent;
  unmatched: NestForgeUnmatchedEvent;
}

export class NestForgeClient extends EventTarget {
  /** Opens the connection at once; throws on an invalid URL. */
  constructor(url: string | URL, options?: ClientOptions);
  /** Resolves on the first open; rejects (`closed`) if the client ends before it. */
  readonly ready: Promise<void>;
  /** Whether a connection is open now. */
  readonly connected: boolean;
  /** Sends a request (a unique `id`); resolves with the reply's payload. */
  send<T = unknown>(pattern: string, payload?: unknown, options?: SendOptions): Promise<T>;
  /** Sends an event (no `id`, no reply); resolves once written to the socket. */
  emit(pattern: string, payload?: unknown, options?: EmitOptions): Promise<void>;
  /** Calls `handler` for every push of `pattern`; returns the function that unsubscribes. */
  on<T = unknown>(pattern: string, handler: PushHandler<T>): () => void;
  /** Ends the client for good; queued and pending requests reject with `closed`. */
  close(code?: number, reason?: string): void;

  addEventListener<K extends keyof NestForgeClientEventMap>(
    type: K,
    listener: (this: NestForgeClient, event: NestForgeClientEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof NestForgeClientEventMap>(
    type: K,
    listener: (this: NestForgeClient, event: NestForgeClientEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** Opens a client on `url`. */
export function connect(url: string | URL, options?: ClientOptions): NestForgeClient;
