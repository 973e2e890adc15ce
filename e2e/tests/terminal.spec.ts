import { expect, test } from '@playwright/test';

test('the server renders the trading terminal before any script runs', async ({ request }) => {
  const response = await request.get('/');
  expect(response.status()).toBe(200);
  const html = await response.text();
  expect(html).toContain('Satoshi Exchange');
  expect(html).toContain('data-hydrated="false"');
  for (const area of ['Chart', 'Order book', 'Trades', 'Trade']) {
    expect(html).toContain(`>${area}</h2>`);
  }
  expect(html).toContain('<option value="BTC-USD"');
});

test('the page hydrates, streams server ticks over a websocket and draws the chart', async ({ page }, testInfo) => {
  const sockets: string[] = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));

  await page.goto('/');
  await expect(page.locator('.terminal')).toHaveAttribute('data-hydrated', 'true');

  // Streamed values arrive and keep arriving.
  const seq = page.getByTestId('tick-seq');
  await expect.poll(async () => Number(await seq.textContent())).toBeGreaterThanOrEqual(2);
  const first = Number(await seq.textContent());
  await expect.poll(async () => Number(await seq.textContent())).toBeGreaterThan(first);
  await expect(page.locator('.link-status')).toHaveAttribute('data-link', 'live');
  expect(sockets.some((url) => url.includes('server_clock'))).toBe(true);

  // The canvas was painted from WASM: the background and the data line are
  // both present in the pixels read back.
  const pixels = await page.getByTestId('chart').evaluate((node) => {
    const canvas = node as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let background = 0;
    let line = 0;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (r === 0x11 && g === 0x15 && b === 0x1c) background++;
      if (Math.abs(r - 0x3d) < 24 && Math.abs(g - 0xd6) < 24 && Math.abs(b - 0x8c) < 24) line++;
    }
    return { background, line, total: data.length / 4 };
  });
  expect(pixels.background).toBeGreaterThan(pixels.total / 2);
  expect(pixels.line).toBeGreaterThan(20);

  await page.screenshot({ path: testInfo.outputPath('terminal.png'), fullPage: true });
});
