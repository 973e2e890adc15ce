// Times the price chart in headless Chromium: full redraws, redraws after
// zoom and pan, and live appends over a long history, with the page's own
// clock around the drawing calls.
// Run by scripts/bench-chart.sh, which builds the WASM it loads.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from '@playwright/test';

const dir = process.argv[2];
const points = Number(process.env.POINTS ?? 10000);
const redraws = Number(process.env.REDRAWS ?? 200);
const appends = Number(process.env.APPENDS ?? 1000);
const scale = Number(process.env.DEVICE_SCALE ?? 2);

const page_html = `<!doctype html><meta charset="utf-8">
<canvas id="chart" style="width:960px;height:480px;display:block"></canvas>`;

function summary(ms) {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
  const f = (x) => `${x.toFixed(3)} ms`;
  return `n ${sorted.length}  p50 ${f(at(0.5))}  p99 ${f(at(0.99))}  max ${f(sorted[sorted.length - 1])}`;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
  ],
});
const context = await browser.newContext({
  viewport: { width: 1000, height: 600 },
  deviceScaleFactor: scale,
});
const page = await context.newPage();
const isolated = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};
// Serve the page and the built module from memory: no server needed.
await page.route('http://localhost:9/**', async (route) => {
  const name = new URL(route.request().url()).pathname.slice(1);
  if (name === '' || name === 'index.html') {
    return route.fulfill({ contentType: 'text/html', headers: isolated, body: page_html });
  }
  const type = name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
  // Cross-origin isolated, so performance.now() is precise to microseconds.
  return route.fulfill({
    contentType: type,
    headers: isolated,
    body: await readFile(path.join(dir, name)),
  });
});
await page.goto('http://localhost:9/');
const runs = [
  [false, false], [true, false], [false, true], [true, true],
];
for (const [line, flush] of runs) {
  const result = await page.evaluate(
    async ([points, redraws, appends, line, flush]) => {
      const module = await import('/exchange.js');
      await module.default();
      const canvas = document.getElementById('chart');
      return Array.from(module.chart_bench(canvas, points, redraws, appends, line, flush));
    },
    [points, redraws, appends, line, flush],
  );
  const [scheduled, differing, ...ms] = result;
  const style = line ? 'line' : 'candles';
  const until = flush ? 'until the pixels are drawn' : 'until the calls return';
  console.log(`${style}, ${points} points, device scale ${scale}, timed ${until}`);
  console.log(`  full redraw  ${summary(ms.slice(0, redraws))}`);
  console.log(`  after zoom/pan (100-1000 candles, 3 averages)  ${summary(ms.slice(redraws, 2 * redraws))}`);
  if (ms.length > 2 * redraws) {
    console.log(`  append       ${summary(ms.slice(2 * redraws))}`);
  }
  console.log(`  pushes that needed a full redraw: ${scheduled} of ${appends}`);
  console.log(`  canvas bytes that painting everything again (same axes) changed: ${differing}`);
}
await browser.close();
