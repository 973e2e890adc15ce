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
  expect(html).toContain('data-testid="ticker"');
  expect(html).toContain('Create an account');
});

test('the page hydrates, opens its market feed and paints the chart', async ({ page }, testInfo) => {
  const sockets: string[] = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  // The page's content security policy lets everything the page does run.
  const violations: string[] = [];
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) violations.push(m.text());
  });

  await page.goto('/');
  await expect(page.locator('.terminal')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('.link-status')).toHaveAttribute('data-link', 'live');
  expect(sockets.some((url) => url.includes('market_feed'))).toBe(true);

  // The canvas was painted from WASM at device-pixel size.
  const painted = await page.getByTestId('chart').evaluate((node) => {
    const canvas = node as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let background = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] === 0x11 && data[i + 1] === 0x15 && data[i + 2] === 0x1c) background++;
    }
    return { background, total: data.length / 4, ratio: canvas.width / canvas.clientWidth };
  });
  expect(painted.background).toBeGreaterThan(painted.total / 2);
  expect(painted.ratio).toBeCloseTo(await page.evaluate(() => window.devicePixelRatio), 1);

  expect(violations).toEqual([]);
  expect((await page.request.get('/')).headers()['content-security-policy']).toContain("frame-ancestors 'none'");
  await page.screenshot({ path: testInfo.outputPath('terminal.png'), fullPage: true });
});
