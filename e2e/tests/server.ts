import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * An exchange server process of the test's own, on its own port and data
 * folder, so a test can stop and start it again on the same data.
 */
export class ExchangeServer {
  readonly data = mkdtempSync(join(tmpdir(), 'exchange-e2e-'));
  private child?: ChildProcess;

  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn('../target/debug/exchange', [], {
      env: {
        ...process.env,
        EXCHANGE_ADDR: `127.0.0.1:${this.port}`,
        EXCHANGE_DATA: join(this.data, 'events'),
        EXCHANGE_CONFIG: '../config/exchange.json',
        LEPTOS_SITE_ROOT: '../target/site',
        RUST_LOG: 'warn,eventstore=off',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    this.child = child;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
      try {
        if ((await fetch(this.url)).ok) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('server did not start within 30 s');
  }

  /** Stops the server the way an operator does (SIGTERM) and waits. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}
