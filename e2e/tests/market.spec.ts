import { expect, test } from '@playwright/test';
import { ExchangeServer } from './server';
import { pixels } from './chart';
import { limit, trader as traderAt } from './traders';

// A market of its own: this file starts (and restarts) its own server.
const server = new ExchangeServer(Number(process.env.E2E_MARKET_PORT ?? 3104));
test.describe.configure({ mode: 'serial' });
test.beforeAll(async () => server.start());
test.afterAll(async () => server.stop());
const trader = (name: string) => traderAt(server.url, name);

test('a viewer sees trades arrive live, switches market, and survives a restart', async ({ page }, testInfo) => {
  await page.goto(server.url);
  await expect(page.locator('.terminal')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('.link-status')).toHaveAttribute('data-link', 'live');
  const canvas = await page.getByTestId('chart').elementHandle();
  const sameCanvas = () =>
    page.evaluate((c) => c === document.querySelector('[data-testid="chart"]'), canvas);
  const before = await pixels(page);

  const alice = await trader('alice');
  const bob = await trader('bob');
  await limit(alice, 'BTC-USD', 'sell', '30000', '0.5');
  // Depth shows the resting order.
  await expect(page.getByTestId('depth').locator('tbody.asks td.price')).toHaveText(['30000']);
  await limit(bob, 'BTC-USD', 'buy', '30000', '0.2');
  // Within a second the trade is on the tape, and the ticker follows.
  const tape = page.getByTestId('tape');
  await expect(tape.locator('tr[data-trade-id="1"] td.price')).toHaveText('30000', { timeout: 1000 });
  await expect(page.getByTestId('ticker').locator('dd.last')).toHaveText('30000');
  await expect.poll(() => pixels(page)).not.toBe(before);
  expect(await sameCanvas()).toBe(true);

  // More trades append without re-mounting the chart.
  const one = await pixels(page);
  await limit(bob, 'BTC-USD', 'buy', '30000', '0.1');
  await expect(tape.locator('tr[data-trade-id="2"]')).toBeVisible({ timeout: 1000 });
  await expect.poll(() => pixels(page)).not.toBe(one);
  expect(await sameCanvas()).toBe(true);
  // The crosshair tooltip names the candle under the pointer.
  const box = (await page.getByTestId('chart').boundingBox())!;
  let tip = '';
  for (let f = 0.02; f < 1 && !tip.includes('O 30000'); f += 0.01) {
    await page.mouse.move(box.x + box.width * f, box.y + box.height / 3);
    tip = (await page.getByTestId('chart-tooltip').textContent({ timeout: 50 }).catch(() => null)) ?? '';
  }
  expect(tip).toContain('O 30000');
  await expect(page.locator('.crosshair-v')).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('chart-btc.png'), fullPage: true });

  // Switching market changes the feed without reloading the page.
  await page.getByTestId('market-select').selectOption('ETH-USD');
  await expect(tape.locator('tbody tr')).toHaveCount(0);
  await limit(alice, 'ETH-USD', 'sell', '2000', '0.4');
  await limit(bob, 'ETH-USD', 'buy', '2000', '0.4');
  await expect(tape.locator('tr[data-trade-id="1"] td.price')).toHaveText('2000', { timeout: 1000 });
  // A BTC trade now does not reach the ETH tape.
  await limit(bob, 'BTC-USD', 'buy', '30000', '0.001');
  await page.waitForTimeout(300);
  await expect(tape.locator('tbody tr')).toHaveCount(1);
  expect(await sameCanvas()).toBe(true);

  // A server restart: the page reconnects by itself and carries on.
  await server.stop();
  await expect(page.locator('.link-status')).toHaveAttribute('data-link', 'reconnecting');
  await server.start();
  await expect(page.locator('.link-status')).toHaveAttribute('data-link', 'live', { timeout: 15_000 });
  const alice2 = await trader('carol');
  const dave = await trader('dave');
  await limit(alice2, 'ETH-USD', 'sell', '2001', '1');
  await limit(dave, 'ETH-USD', 'buy', '2001', '1');
  await expect(tape.locator('tr[data-trade-id="2"] td.price')).toHaveText('2001', { timeout: 2000 });
  await expect(tape.locator('tbody tr')).toHaveCount(2);
  expect(await sameCanvas()).toBe(true);
  await page.screenshot({ path: testInfo.outputPath('chart-eth-after-restart.png'), fullPage: true });
});
