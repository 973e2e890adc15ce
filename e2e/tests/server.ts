import { ChildProcess, spawn, spawnSync } from 'node:child_process';
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
        // The tests set up their histories faster than a person places
        // orders (53 in well under a second for the history test), which
        // the default 50 per 10 s would refuse depending on the machine's
        // speed. The limit itself is tested in the Rust tests.
        EXCHANGE_ORDERS_PER_10S: '500',
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

  /**
   * Before the first start: writes a market's history into the data folder
   * as an earlier server would have, from engine commands (the `orderbook
   * match` command line makes the events; `seed_history.py` appends them
   * through the Python client to the standalone store on the same folder).
   */
  async seedHistory(symbol: string, commands: object[]): Promise<void> {
    const matched = spawnSync('../target/debug/orderbook', ['match'], {
      input: commands.map((c) => JSON.stringify(c)).join('\n'),
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    });
    if (matched.status !== 0) throw new Error(`orderbook match failed: ${matched.stderr}`);
    const store = spawn('../target/debug/store', ['--listen', '127.0.0.1:0', '--insecure', '--data', join(this.data, 'events')], {
      env: { ...process.env, RUST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const address = await new Promise<string>((resolve, reject) => {
        let out = '';
        store.stdout!.on('data', (chunk) => {
          out += chunk;
          const line = out.split('\n')[0];
          if (out.includes('\n')) {
            if (line.startsWith('listening on ')) resolve(line.split(' ')[2]);
            else reject(new Error(`store said: ${line}`));
          }
        });
        store.once('exit', (code) => reject(new Error(`store exited with ${code}`)));
      });
      const seeded = spawnSync('../.tools/venv/bin/python', ['seed_history.py', address, `orderbook-${symbol}`], {
        input: matched.stdout,
        encoding: 'utf8',
      });
      if (seeded.status !== 0) throw new Error(`seeding failed: ${seeded.stderr}`);
    } finally {
      const exited = new Promise((r) => store.once('exit', r));
      store.kill('SIGTERM');
      await exited;
    }
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
