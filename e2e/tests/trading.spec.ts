import { Browser, Page, expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { ExchangeServer } from './server';
import { limit, trader } from './traders';

// This file runs its own server so it can restart it on the same data.
const server = new ExchangeServer(Number(process.env.E2E_TRADING_PORT ?? 3102));
test.describe.configure({ mode: 'serial' });
test.beforeAll(async () => server.start());
test.afterAll(async () => server.stop());

async function open(browser: Browser): Promise<Page> {
  const context = await browser.newContext({ baseURL: server.url });
  const page = await context.newPage();
  await page.goto('/');
  await expect(page.locator('.terminal')).toHaveAttribute('data-hydrated', 'true');
  return page;
}

async function signUp(browser: Browser, name: string): Promise<Page> {
  const page = await open(browser);
  const form = page.locator('form', { has: page.getByRole('heading', { name: 'Create an account' }) });
  await form.getByLabel('Username').fill(name);
  await form.getByLabel('Password').fill('correct horse battery');
  await form.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByTestId('username')).toHaveText(name);
  await page.getByRole('button', { name: 'Get demo funds' }).click();
  await expect(balance(page, 'USD', 'available')).toHaveText('10000');
  return page;
}

function balance(page: Page, asset: string, column: 'available' | 'reserved' | 'total') {
  return page.locator(`table.balances tr[data-asset="${asset}"] td.${column}`);
}

async function placeLimit(page: Page, side: 'Buy' | 'Sell', price: string, quantity: string) {
  await page.getByRole('radio', { name: side }).check();
  await page.getByLabel('Order type').selectOption('limit');
  await page.getByLabel('Price', { exact: true }).fill(price);
  await page.getByLabel('Quantity', { exact: true }).fill(quantity);
  await page.getByRole('button', { name: `Place ${side.toLowerCase()} order` }).click();
}

test('two traders trade, cancel, and find it all again after a restart', async ({ browser }, testInfo) => {
  const alice = await signUp(browser, 'alice');

  // Bad input gets a message beside its field, and nothing is placed.
  await placeLimit(alice, 'Sell', 'abc', '0.5');
  await expect(alice.locator('#order-price-error')).toHaveText('"abc" is not a number');
  await placeLimit(alice, 'Sell', '30000.001', '0.5');
  await expect(alice.locator('#order-price-error')).toHaveText('price must be a multiple of 0.01');
  await placeLimit(alice, 'Sell', '30000', '5');
  await expect(alice.locator('#order-quantity-error')).toHaveText('insufficient BTC: 1 available, 5 needed');
  await expect(alice.locator('table.open-orders tbody tr')).toHaveCount(0);

  // A resting limit order shows in open orders and holds its BTC.
  await placeLimit(alice, 'Sell', '30000', '0.5');
  await expect(alice.getByTestId('order-result')).toHaveText('Order 1 is on the book.');
  await expect(alice.locator('#order-price-error')).toBeEmpty();
  const row = alice.locator('table.open-orders tr[data-order-id="1"]');
  await expect(row.locator('td.status')).toHaveText('open');
  await expect(balance(alice, 'BTC', 'reserved')).toHaveText('0.5');
  // Alice's own order book follows her order without a reload.
  const book = alice.getByTestId('depth');
  await expect(book.locator('tbody.asks td.price')).toHaveText(['30000'], { timeout: 2000 });

  // Bob crosses it.
  const bob = await signUp(browser, 'bob');
  await placeLimit(bob, 'Buy', '30000', '0.2');
  await expect(bob.getByTestId('order-result')).toHaveText(
    'Order 2 filled: 0.2 BTC traded at an average price of 30000.',
  );
  await expect(balance(bob, 'BTC', 'available')).toHaveText('1.1996');
  await expect(balance(bob, 'USD', 'total')).toHaveText('4000');
  await expect(bob.locator('table.fills tbody tr td.fee')).toHaveText('0.0004 BTC');

  // Alice sees the fill without reloading her page: pushed over the
  // page's feed (the panel does not poll), with a notice.
  await expect(alice.getByTestId('fill-notice')).toHaveText('Sold 0.2 BTC at 30000 (order 1, maker)');
  await expect(row.locator('td.status')).toHaveText('partially filled');
  await expect(row.locator('td.filled')).toHaveText('0.2');
  await expect(balance(alice, 'USD', 'available')).toHaveText('15994');
  await expect(alice.locator('table.fills tbody tr td.fee')).toHaveText('6 USD');
  // The book shows what is left of the ask.
  await expect(book.locator('tbody.asks td:nth-child(2)')).toHaveText(['0.3'], { timeout: 2000 });

  // Cancelling releases what was left.
  await alice.getByRole('button', { name: 'Cancel order 1' }).click();
  await expect(alice.locator('table.open-orders tbody tr')).toHaveCount(0);
  await expect(balance(alice, 'BTC', 'reserved')).toHaveText('0');
  await expect(balance(alice, 'BTC', 'available')).toHaveText('0.8');
  await expect(book.locator('tbody.asks td.price')).toHaveCount(0, { timeout: 2000 });

  // One more resting order, then a restart.
  await placeLimit(alice, 'Buy', '25000', '0.1');
  await expect(alice.getByTestId('order-result')).toHaveText('Order 3 is on the book.');
  await expect(book.locator('tbody.bids td.price')).toHaveText(['25000'], { timeout: 2000 });
  await alice.screenshot({ path: testInfo.outputPath('trader-before-restart.png'), fullPage: true });
  const before = await alice.locator('.entry-panel table').allInnerTexts();

  await server.stop();
  await server.start();
  // The server paints her account into the page itself, before any script.
  const html = await (await alice.request.get(`${server.url}/`)).text();
  expect(html).toContain('data-testid="username">alice<');
  expect(html).toContain('data-order-id="3"');
  await alice.reload();
  await expect(alice.locator('.terminal')).toHaveAttribute('data-hydrated', 'true');
  await expect(alice.getByTestId('username')).toHaveText('alice');
  await expect(alice.locator('table.open-orders tr[data-order-id="3"] td.status')).toHaveText('open');
  expect(await alice.locator('.entry-panel table').allInnerTexts()).toEqual(before);
  await expect(balance(alice, 'USD', 'reserved')).toHaveText('2500');
  await alice.screenshot({ path: testInfo.outputPath('trader-after-restart.png'), fullPage: true });

  // Amend from the table: a new price and a larger quantity; the
  // reservation and the book follow.
  await alice.getByLabel('Amend order 3').click();
  const amendForm = alice.locator('table.open-orders tr[data-order-id="3"] details.amend form');
  await expect(amendForm.getByLabel('Open quantity')).toHaveValue('0.1');
  await amendForm.getByLabel('New price').fill('24000');
  await amendForm.getByLabel('Open quantity').fill('0.2');
  // A poll in between does not wipe what she typed.
  await alice.waitForTimeout(1500);
  await expect(amendForm.getByLabel('New price')).toHaveValue('24000');
  await amendForm.getByRole('button', { name: 'Save' }).click();
  await expect(alice.getByTestId('amend-result')).toHaveText(
    'Order 3 amended to 0.2 at 24000: it goes to the back of the queue.',
  );
  await expect(balance(alice, 'USD', 'reserved')).toHaveText('4800');
  await expect(book.locator('tbody.bids td.price')).toHaveText(['24000'], { timeout: 2000 });
  await expect(book.locator('tbody.bids td:nth-child(2)')).toHaveText(['0.2'], { timeout: 2000 });
  // More than she has is refused with the reason, and nothing changes.
  await alice.getByLabel('Amend order 3').click();
  const again = alice.locator('table.open-orders tr[data-order-id="3"] details.amend form');
  await again.getByLabel('Open quantity').fill('100');
  await again.getByRole('button', { name: 'Save' }).click();
  await expect(alice.getByTestId('amend-error')).toHaveText('insufficient USD: 11194 available, 2395200 needed');
  await expect(balance(alice, 'USD', 'reserved')).toHaveText('4800');

  // Cancel all: every open order goes, and its funds come back.
  await alice.getByRole('button', { name: 'Cancel all' }).click();
  await expect(alice.getByTestId('cancel-all-result')).toHaveText('Cancelled 1 order.');
  await expect(alice.locator('table.open-orders tbody tr')).toHaveCount(0);
  await expect(balance(alice, 'USD', 'reserved')).toHaveText('0');
  await expect(alice.getByRole('button', { name: 'Cancel all' })).toBeDisabled();
});

test('the history pages back through every order, filters, and downloads as CSV', async ({ browser }, testInfo) => {
  const carol = await signUp(browser, 'carol');
  // 52 resting bids (orders 4 to 55: the first test placed 1 to 3) and
  // one refused order, sent as the form would send them.
  for (let i = 0; i < 52; i++) {
    const r = await carol.request.post('/api/place_order', {
      form: { symbol: 'BTC-USD', side: 'buy', order_type: 'limit', price: String(100 + i), quantity: '0.01' },
      headers: { accept: 'application/json' },
    });
    expect(r.status(), await r.text()).toBe(200);
  }
  await placeLimit(carol, 'Buy', '30000', '5');
  await expect(carol.locator('#order-quantity-error')).toContainText('insufficient USD');
  // Another trader sells into her best bid: one fill.
  const dave = await trader(server.url, 'dave');
  await limit(dave, 'BTC-USD', 'sell', '151', '0.01');

  // The history opens beside the terminal: a page with no script at all.
  const opened = carol.waitForEvent('popup');
  await carol.getByRole('link', { name: 'History' }).click();
  const history = await opened;
  await expect(history).toHaveTitle('History · Satoshi Exchange');
  expect(await history.evaluate(() => document.scripts.length)).toBe(0);
  const rows = history.locator('table.order-history tbody tr');
  await expect(rows).toHaveCount(50);
  await expect(rows.first()).toHaveAttribute('data-state', 'rejected');
  await expect(rows.first().locator('.reason')).toHaveText('insufficient USD: 9934.74 available, 150000 needed');
  await expect(history.locator('tr[data-order-id="55"] td.state')).toContainText('filled');
  await history.getByRole('link', { name: 'Older' }).click();
  await expect(rows).toHaveCount(3);
  await expect(rows.last()).toHaveAttribute('data-order-id', '4');
  await expect(history.getByRole('link', { name: 'Older' })).toHaveCount(0);
  // A newer state shows when the page is loaded again, on the same page.
  await carol.getByRole('button', { name: 'Cancel order 4', exact: true }).click();
  await expect(async () => {
    await history.reload();
    await expect(rows.last().locator('td.state')).toContainText('cancelled by you', { timeout: 500 });
  }).toPass();
  await expect(rows).toHaveCount(3);
  await history.getByRole('link', { name: 'Newest' }).click();
  await expect(rows).toHaveCount(50);

  const show = async (label: string, value: string) => {
    await history.getByLabel(label).selectOption(value);
    await history.getByRole('button', { name: 'Show' }).click();
  };
  await show('State', 'rejected');
  await expect(rows).toHaveCount(1);
  await show('State', 'filled');
  await expect(rows).toHaveCount(1);
  await history.locator('td.fills summary').click();
  await expect(history.locator('td.fills li')).toHaveText('0.01 at 151 (maker), fee 0.00001 BTC');
  await show('Market', 'ETH-USD');
  await expect(history.getByText('No orders.')).toBeVisible();
  await expect(history.getByLabel('State')).toHaveValue('filled');
  await show('Market', '');
  await show('State', '');

  await history.getByRole('link', { name: 'Trades' }).click();
  await expect(history.getByRole('link', { name: 'Trades' })).toHaveAttribute('aria-current', 'page');
  await expect(history.locator('table.trade-history tbody tr')).toHaveCount(1);
  await expect(history.locator('table.trade-history tbody tr td').nth(8)).toHaveText('1.51');
  await history.screenshot({ path: testInfo.outputPath('history-trades.png') });
  await history.getByRole('link', { name: 'Orders' }).click();

  const waiting = history.waitForEvent('download');
  await history.getByRole('link', { name: 'Download CSV' }).click();
  const download = await waiting;
  expect(download.suggestedFilename()).toBe('orders.csv');
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
  expect(csv[0]).toBe(
    'placed_at,updated_at,market,order_id,side,type,time_in_force,price,quantity,quote_amount,filled,average_price,fee,fee_asset,state,reason,trigger,trigger_price,triggered_at',
  );
  expect(csv).toHaveLength(54);
  expect(csv[1]).toContain(',rejected,"insufficient USD: 9934.74 available, 150000 needed"');
  await history.screenshot({ path: testInfo.outputPath('history-orders.png') });
  await history.getByRole('link', { name: 'Back to trading' }).click();
  await expect(history.getByRole('link', { name: 'History' })).toBeVisible();
});

test("a stop order waits, is amended, and fires when another trader's trade reaches it", async ({ browser }, testInfo) => {
  // The last trade so far: 0.01 at 151, into Carol's bids (150, 149, ... each 0.01).
  const erin = await signUp(browser, 'erin');
  await erin.getByRole('radio', { name: 'Sell' }).check();
  await erin.getByLabel('Order type').selectOption('stop_market');
  await expect(erin.getByLabel('Price', { exact: true })).toBeHidden();
  await erin.getByLabel('Trigger price').fill('151.5');
  await erin.getByLabel('Quantity', { exact: true }).fill('0.01');
  await erin.getByRole('button', { name: 'Place sell order' }).click();
  // Already reached by the last trade (151): refused beside the trigger.
  await expect(erin.locator('#order-trigger_price-error')).toContainText('already reached');
  await erin.getByLabel('Trigger price').fill('150');
  await erin.getByRole('button', { name: 'Place sell order' }).click();
  await expect(erin.getByTestId('order-result')).toHaveText(
    /^Order \d+ waits for its trigger: it enters when a trade is at or below 150\.$/,
  );
  const row = erin.locator('table.open-orders tbody tr');
  await expect(row).toHaveCount(1);
  const id = await row.getAttribute('data-order-id');
  await expect(row.locator('td.status')).toHaveText('waiting: stop at 150');
  await expect(balance(erin, 'BTC', 'reserved')).toHaveText('0.01');

  // A new trigger from the table.
  await erin.getByLabel(`Amend order ${id}`).click();
  const amend = row.locator('details.amend form');
  await expect(amend.getByLabel('New price')).toBeHidden();
  await amend.getByLabel('New trigger price').fill('150.5');
  await amend.getByRole('button', { name: 'Save' }).click();
  await expect(erin.getByTestId('amend-result')).toHaveText(`Order ${id} now waits for 150.5, quantity 0.01.`);
  await expect(row.locator('td.status')).toHaveText('waiting: stop at 150.5');
  await erin.screenshot({ path: testInfo.outputPath('stop-waiting.png') });

  // Another trader sells into Carol's bid at 150: that trade reaches the
  // trigger, and Erin's stop sells into the next bid, 149, at once.
  const frank = await trader(server.url, 'frank');
  await limit(frank, 'BTC-USD', 'sell', '150', '0.01');
  await expect(erin.getByTestId('fill-notice')).toHaveText(`Sold 0.01 BTC at 149 (order ${id}, taker)`);
  await expect(row).toHaveCount(0);
  const fill = erin.locator('table.fills tbody tr');
  await expect(fill).toHaveCount(1);
  await expect(fill.locator('td').nth(4)).toHaveText('149');
  await expect(fill.locator('td').nth(3)).toHaveText('taker');
  await expect(balance(erin, 'BTC', 'reserved')).toHaveText('0');
  await expect(balance(erin, 'BTC', 'available')).toHaveText('0.99');
  await erin.screenshot({ path: testInfo.outputPath('stop-fired.png') });
});

test('a trader makes an API key for a program, sees it listed, and revokes it', async ({ browser }, testInfo) => {
  const gina = await signUp(browser, 'gina');
  // The keys page opens beside the terminal: plain HTML, no script.
  const opened = gina.waitForEvent('popup');
  await gina.getByRole('link', { name: 'API keys' }).click();
  const keys = await opened;
  await expect(keys).toHaveTitle('API keys · Satoshi Exchange');
  expect(await keys.evaluate(() => document.scripts.length)).toBe(0);
  await keys.getByLabel('Label').fill('my bot');
  await keys.getByLabel('trade').check();
  await keys.getByLabel(/Allowed addresses/).fill('127.0.0.1, 10.0.0.0/8');
  await keys.getByRole('button', { name: 'Create key' }).click();
  const created = keys.getByRole('status');
  await expect(created.getByRole('heading')).toHaveText('Key created');
  const keyId = await keys.locator('[data-key-id]').textContent();
  expect(keyId).toMatch(/^[A-Za-z0-9]{64}$/);
  const secret = await keys.locator('[data-secret]').textContent();
  expect(secret).toMatch(/^[A-Za-z0-9]{64}$/);
  const row = keys.locator('table.keys tbody tr', { hasText: keyId! });
  await expect(row.locator('td').nth(2)).toHaveText('hmac');
  await expect(row.locator('td').nth(3)).toHaveText('read, trade');
  await expect(row.locator('td').nth(4)).toHaveText('127.0.0.1, 10.0.0.0/8');
  await keys.screenshot({ path: testInfo.outputPath('api-key-created.png') });
  // The secret is shown once: the list never shows it again. (Opened
  // afresh: reloading the answer to the form would post it again.)
  await keys.goto('/keys');
  await expect(keys.locator('[data-secret]')).toHaveCount(0);
  expect(await keys.content()).not.toContain(secret!);
  // A bad allow-list is refused with the reason, and makes no key.
  await keys.getByLabel('Label').fill('bad');
  await keys.getByLabel(/Allowed addresses/).fill('10.0.0.0/99');
  await keys.getByRole('button', { name: 'Create key' }).click();
  await expect(keys.getByRole('alert')).toContainText('is not an IP address or network');
  await expect(keys.locator('table.keys tbody tr')).toHaveCount(1);
  await row.getByRole('button', { name: 'Revoke' }).click();
  await expect(keys.locator('table.keys tbody tr', { hasText: keyId! }).locator('td').nth(8)).toContainText('revoked');
});
