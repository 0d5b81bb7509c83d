// The example gateways as child processes on 127.0.0.1, on ports picked by binding port 0.
// Only the processes started here are ever signalled, by their own handle.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const examples =
  process.env.NESTFORGE_EDGE_EXAMPLES ??
  fileURLToPath(new URL('../../../target/debug/examples/', import.meta.url));

/** A port free on 127.0.0.1 now. */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** The gateways both suites run against, started together: `events_gateway`, `push_gateway`,
 * and a second `push_gateway` that tests stop and restart. */
export async function startGateways() {
  const [events, push, restartable] = await Promise.all([
    Gateway.start('events_gateway'),
    Gateway.start('push_gateway'),
    Gateway.start('push_gateway'),
  ]);
  return { events, push, restartable };
}

/** An example gateway (`events_gateway`, `push_gateway`) that can be stopped and restarted. */
export class Gateway {
  constructor(name, port) {
    this.name = name;
    this.port = port;
    this.url = `ws://127.0.0.1:${port}/ws`;
    this.child = null;
  }

  static async start(name) {
    const gateway = new Gateway(name, await freePort());
    await gateway.start();
    return gateway;
  }

  /** Starts the process (unless it runs) and resolves once it printed its listening line
   * (10 s at most). */
  async start() {
    if (this.child) return;
    const child = spawn(`${examples}/${this.name}`, [], {
      env: { ...process.env, HOST: '127.0.0.1', PORT: String(this.port) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    const lines = createInterface({ input: child.stdout });
    const listening = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: not listening in 10 s`)), 10000);
      lines.on('line', (line) => {
        if (line.includes('listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`${this.name} exited (${code}) at start`)));
    });
    try {
      await listening;
    } catch (error) {
      child.kill('SIGKILL');
      this.child = null;
      throw error;
    }
  }

  /** Sends `signal` and resolves with the exit code (or signal); SIGKILL after 5 s. */
  async stop(signal = 'SIGTERM') {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return null;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const [code, by] = await exited;
    clearTimeout(timer);
    this.child = null;
    return code ?? by;
  }

  /** Ends the process abruptly, as a crash would. */
  kill() {
    return this.stop('SIGKILL');
  }
}
