import { defineConfig } from '@playwright/test';

// The tests drive Debian's Chromium against the real server binary that
// `cargo leptos build` produced; Playwright never downloads a browser.
const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL,
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
        '--no-first-run',
      ],
    },
  },
  webServer: {
    // A fresh data folder every run: the terminal tests need no history.
    command: 'rm -rf ../target/e2e-data && ../target/debug/exchange',
    url: baseURL,
    reuseExistingServer: false,
    timeout: 60_000,
    env: {
      EXCHANGE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: '../target/site',
      EXCHANGE_DATA: '../target/e2e-data/events',
      EXCHANGE_CONFIG: '../config/exchange.json',
      RUST_LOG: 'warn,eventstore=off',
    },
  },
});
