import { Browser, Locator, Page, expect, request as playwrightRequest, test } from '@playwright/test';
import { pixels } from './chart';
import { ExchangeServer } from './server';
import { limit, trader } from './traders';

// The market screen at the sizes people use, on a market of its own with
// 600 minutes of history written before the server starts and a known book.
const server = new ExchangeServer(Number(process.env.E2E_SCREEN_PORT ?? 3106));
const MINUTE = 60_000;
const HISTORY = 600;
const first = (Math.floor(Date.now() / MINUTE) - HISTORY - 60) * MINUTE;
test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  const commands: object[] = [];
  for (let i = 0; i < HISTORY; i++) {
    const price = (30000 + 40 * Math.sin(i / 25)).toFixed(2);
    const at = (first + i * MINUTE) * 1000 + 500;
    const order = { command: 'place', symbol: 'BTC-USD', type: 'limit', price, quantity: '0.01' };
    commands.push({ ...order, order_id: 2 * i + 1, account: 900001, side: 'sell', at });
    commands.push({ ...order, order_id: 2 * i + 2, account: 900002, side: 'buy', at: at + 1 });
  }
  await server.seedHistory('BTC-USD', commands);
  await server.start();
  const maker = await trader(server.url, 'maker');
  for (const [side, price, quantity] of [
    ['sell', '30001', '0.01'],
    ['sell', '30004', '0.02'],
    ['sell', '30012.5', '0.03'],
    ['buy', '29999', '0.01'],
    ['buy', '29995.5', '0.02'],
    ['buy', '29987', '0.04'],
  ]) {
    await limit(maker, 'BTC-USD', side, price, quantity);
  }
  // A trade for the tape: 0.005 of the best ask is left.
  await limit(await trader(server.url, 'taker'), 'BTC-USD', 'buy', '30001', '0.005');
});
test.afterAll(async () => server.stop());

async function open(browser: Browser, width: number, height: number): Promise<Page> {
  const context = await browser.newContext({ baseURL: server.url, viewport: { width, height } });
  const page = await context.newPage();
  await page.goto('/');
  await expect(page.locator('.terminal')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('.link-status')).toHaveAttribute('data-link', 'live');
  return page;
}

/** Whether the element is wholly inside the viewport. */
async function inViewport(page: Page, element: Locator): Promise<boolean> {
  const box = await element.boundingBox();
  const size = page.viewportSize()!;
  return !!box && box.x >= 0 && box.y >= 0 && box.x + box.width <= size.width && box.y + box.height <= size.height;
}

async function documentScrolls(page: Page): Promise<{ x: boolean; y: boolean }> {
  return page.evaluate(() => {
    const root = document.documentElement;
    return { x: root.scrollWidth > window.innerWidth, y: root.scrollHeight > window.innerHeight };
  });
}

const bestAsk = (page: Page) => page.getByTestId('depth').locator('tbody.asks tr').last();
const bestBid = (page: Page) => page.getByTestId('depth').locator('tbody.bids tr').first();

for (const [width, height] of [
  [1280, 720],
  [1440, 900],
  [1920, 1080],
]) {
  test(`at ${width}x${height} the terminal fits the screen with the book and tape in sight`, async ({ browser }, testInfo) => {
    const page = await open(browser, width, height);
    await expect(bestAsk(page).locator('td.price')).toHaveText('30001');
    await expect(bestBid(page).locator('td.price')).toHaveText('29999');
    await expect(page.getByTestId('spread')).toContainText('Spread 2');
    expect(await documentScrolls(page)).toEqual({ x: false, y: false });
    const tape = page.getByTestId('tape').locator('tbody tr').first();
    for (const [name, element] of [
      ['best ask', bestAsk(page)],
      ['best bid', bestBid(page)],
      ['spread row', page.getByTestId('spread')],
      ['newest trade', tape],
      ['chart', page.getByTestId('chart')],
      ['trade panel heading', page.getByRole('heading', { name: 'Trade', exact: true })],
    ] as const) {
      expect(await inViewport(page, element), name).toBe(true);
    }
    // The last price's line and label, at the last trade.
    await expect(page.getByTestId('last-price')).toHaveText('30001');
    // The chart takes the main area.
    const chart = (await page.getByTestId('chart').boundingBox())!;
    expect(chart.width * chart.height).toBeGreaterThan(0.3 * width * height);
    await page.screenshot({ path: testInfo.outputPath(`terminal-${width}x${height}.png`) });
    await page.context().close();
  });
}

test('on a phone the areas are tabs and the header fits', async ({ browser }, testInfo) => {
  const page = await open(browser, 390, 844);
  expect((await documentScrolls(page)).x).toBe(false);
  expect(await inViewport(page, page.locator('.topbar'))).toBe(true);
  const areas = { Chart: '#area-chart', Book: '#area-book', Trades: '#area-trades', Trade: '#area-trade' };
  for (const [tab, area] of Object.entries(areas)) {
    await page.getByRole('tab', { name: tab, exact: true }).click();
    await expect(page.getByRole('tab', { name: tab, exact: true })).toHaveAttribute('aria-selected', 'true');
    for (const [other, otherArea] of Object.entries(areas)) {
      if (other === tab) await expect(page.locator(otherArea)).toBeVisible();
      else await expect(page.locator(otherArea)).toBeHidden();
    }
    expect((await documentScrolls(page)).x).toBe(false);
    await page.screenshot({ path: testInfo.outputPath(`phone-${tab.toLowerCase()}.png`) });
  }
  // A level picked in the book goes to the order form, which it shows.
  await signUp(page, 'phone');
  await page.getByRole('tab', { name: 'Book' }).click();
  await page.getByRole('button', { name: 'Use price 29995.5' }).click();
  await expect(page.locator('#area-trade')).toBeVisible();
  await expect(page.locator('#order-price')).toHaveValue('29995.5');
  await page.context().close();
});

async function signUp(page: Page, name: string) {
  // On a phone the forms are behind their tab.
  const tab = page.getByRole('tab', { name: 'Trade', exact: true });
  if (await tab.isVisible()) await tab.click();
  const form = page.locator('form', { has: page.getByRole('heading', { name: 'Create an account' }) });
  await form.getByLabel('Username').fill(name);
  await form.getByLabel('Password').fill('correct horse battery');
  await form.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByTestId('username')).toHaveText(name);
}

test('clicking a level puts its price into the order form, and the book groups by price', async ({ browser }) => {
  const page = await open(browser, 1280, 720);
  await signUp(page, 'clicker');
  await page.getByLabel('Order type').selectOption('market');
  await page.getByRole('button', { name: 'Use price 30004' }).click();
  await expect(page.locator('#order-price')).toHaveValue('30004');
  await expect(page.locator('#order-price')).toBeVisible();
  await expect(page.getByLabel('Order type')).toHaveValue('limit');
  await expect(page.locator('#order-symbol')).toHaveValue('BTC-USD');
  await expect(page.locator('#order-quantity')).toBeFocused();

  const levels = (side: string) => page.getByTestId('depth').locator(`tbody.${side} tr`);
  const shown = async (side: string) =>
    (await levels(side).all()).length === 0
      ? []
      : levels(side).evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
  await expect(page.getByTestId('book-step').locator('option')).toHaveText(['0.01', '0.1', '1', '10']);
  await page.getByTestId('book-step').selectOption('10');
  // Asks round up, bids down; sizes and totals are summed exactly.
  await expect.poll(() => shown('asks')).toEqual([
    ['30020', '0.03', '0.055'],
    ['30010', '0.025', '0.025'],
  ]);
  await expect.poll(() => shown('bids')).toEqual([
    ['29990', '0.03', '0.03'],
    ['29980', '0.04', '0.07'],
  ]);
  await page.getByTestId('book-step').selectOption('0.01');
  await expect.poll(() => shown('bids')).toEqual([
    ['29999', '0.01', '0.01'],
    ['29995.5', '0.02', '0.03'],
    ['29987', '0.04', '0.07'],
  ]);
  await page.context().close();
});

test('the depth chart draws the book beside the price chart, which stays as it was', async ({ browser }, testInfo) => {
  const page = await open(browser, 1280, 720);
  const canvas = await page.getByTestId('chart').elementHandle();
  await page.getByRole('tab', { name: 'Depth' }).click();
  const chart = page.getByTestId('depth-chart');
  await expect(chart).toBeVisible();
  await expect(page.getByTestId('chart')).toBeHidden();
  // Bids reach 13 below the middle (30000), further than the asks: the
  // axis runs 13 and a tenth either side of it.
  await expect(chart.locator('.depth-low')).toHaveText('29985.7');
  await expect(chart.locator('.depth-middle')).toHaveText('30000');
  await expect(chart.locator('.depth-high')).toHaveText('30014.3');
  // Three bid levels and three ask levels: three steps up each.
  for (const side of ['bids', 'asks']) {
    const d = (await chart.locator(`path.${side}`).getAttribute('d'))!;
    expect(d.match(/V/g)?.length, d).toBe(4);
  }
  await page.screenshot({ path: testInfo.outputPath('depth-chart.png') });
  await page.getByRole('tab', { name: 'Price' }).click();
  await expect(page.getByTestId('chart')).toBeVisible();
  expect(await page.evaluate((c) => c === document.querySelector('[data-testid="chart"]'), canvas)).toBe(true);
  await page.context().close();
});

/** The start of the first candle in view, as the chart says. */
async function firstShown(page: Page): Promise<number> {
  return Number(await page.locator('.chart-frame').getAttribute('data-first-shown'));
}

test('zooming out loads older candles, back to the first trade, as the server has them', async ({ browser, request }, testInfo) => {
  const page = await open(browser, 1280, 720);
  const reply = await request.post(`${server.url}/api/candles_before`, {
    headers: { accept: 'application/json' },
    form: { symbol: 'BTC-USD', interval: '1m', before_ms: String(Date.now() + MINUTE), limit: '1000' },
  });
  expect(reply.status(), await reply.text()).toBe(200);
  const history = (await reply.json()) as { candles: { start_ms: number }[]; earlier: boolean };
  expect(history.earlier).toBe(false);
  expect(history.candles[0].start_ms).toBe(first);
  // The page starts with the newest 200 and shows the last 90 of them.
  await expect(page.locator('.chart-frame')).toHaveAttribute('data-loaded', '200');
  const live = await firstShown(page);
  expect(live).toBeGreaterThan(first);

  let previous = live;
  for (let i = 0; i < 30 && (await firstShown(page)) > first; i++) {
    await page.getByRole('button', { name: 'Zoom out' }).click();
    await expect.poll(() => firstShown(page)).toBeLessThan(previous);
    previous = await firstShown(page);
  }
  expect(await firstShown(page)).toBe(first);
  await expect(page.locator('.chart-frame')).toHaveAttribute('data-loaded', String(history.candles.length));
  await page.screenshot({ path: testInfo.outputPath('chart-zoomed-out.png') });

  // A moving average is drawn over the candles, and taken off again.
  const before = await pixels(page);
  await page.getByRole('button', { name: 'Moving average of 25' }).click();
  await expect(page.getByRole('button', { name: 'Moving average of 25' })).toHaveAttribute('aria-pressed', 'true');
  await expect.poll(() => pixels(page)).not.toBe(before);
  await page.getByRole('button', { name: 'Moving average of 25' }).click();
  await expect.poll(() => pixels(page)).toBe(before);

  // Back to the latest, then the other ways in: wheel, keys and drag.
  await page.getByRole('button', { name: 'Back to the latest candle' }).click();
  await expect.poll(() => firstShown(page)).toBe(live);
  const box = (await page.getByTestId('chart').boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.8, box.y + box.height / 2);
  await page.mouse.wheel(0, 300);
  await expect.poll(() => firstShown(page)).toBeLessThan(live);
  await page.mouse.wheel(0, -300);
  await page.mouse.wheel(0, -300);
  await expect.poll(() => firstShown(page)).toBeGreaterThan(live);
  // Zoomed in and following the live candle: the keys pan back, End
  // returns to how the chart opened, and a drag pans back too.
  const here = await firstShown(page);
  await page.getByTestId('chart').focus();
  await page.keyboard.press('ArrowLeft');
  await expect.poll(() => firstShown(page)).toBeLessThan(here);
  await page.keyboard.press('End');
  await expect.poll(() => firstShown(page)).toBe(live);
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await expect.poll(() => firstShown(page)).toBeLessThan(live);
  // A pinch: two pointers moving apart zoom in, around their middle.
  await page.getByRole('button', { name: 'Back to the latest candle' }).click();
  await expect.poll(() => firstShown(page)).toBe(live);
  await page.getByTestId('chart').evaluate((canvas, [x, y]) => {
    const at = (id: number, dx: number, type: string) =>
      canvas.dispatchEvent(new PointerEvent(type, { pointerId: id, clientX: x + dx, clientY: y, bubbles: true }));
    at(1, -20, 'pointerdown');
    at(2, 20, 'pointerdown');
    for (let d = 20; d <= 120; d += 20) {
      at(1, -d, 'pointermove');
      at(2, d, 'pointermove');
    }
    at(1, -120, 'pointerup');
    at(2, 120, 'pointerup');
  }, [box.x + box.width * 0.7, box.y + box.height / 2]);
  await expect.poll(() => firstShown(page)).toBeGreaterThan(live);
  // Another interval: the 1h candles of the same trades.
  await page.getByRole('button', { name: '1h candles' }).click();
  await expect.poll(() => firstShown(page)).toBe(Math.floor(first / 3_600_000) * 3_600_000);
  await page.context().close();
});

/** The book as the page shows it: [price, size] of each level, asks then bids. */
async function bookShown(page: Page): Promise<string[][]> {
  return page
    .getByTestId('depth')
    .locator('tbody tr')
    .evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent ?? '')));
}

type Replayed = {
  events: number;
  total: number;
  depth: { bids: { price: string; quantity: string }[]; asks: { price: string; quantity: string }[] };
  trades: { price: string }[];
};

async function replayed(events: number): Promise<Replayed> {
  const api = await playwrightRequest.newContext({ baseURL: server.url, extraHTTPHeaders: { accept: 'application/json' } });
  const r = await api.post('/api/replay_market', { form: { symbol: 'BTC-USD', events: String(events) } });
  expect(r.status(), await r.text()).toBe(200);
  return (await r.json()) as Replayed;
}

const levelsOf = (r: Replayed) => [
  ...[...r.depth.asks].reverse().map((l) => [l.price, l.quantity]),
  ...r.depth.bids.map((l) => [l.price, l.quantity]),
];

test('the time machine shows the book and tape as the log has them at any moment, plays, and goes back to live', async ({ browser }, testInfo) => {
  // A link to a moment mid-history: the 301st order rests alone.
  const context = await browser.newContext({ baseURL: server.url, viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  await page.goto('/?market=BTC-USD&replay=1501');
  await expect(page.locator('.terminal')).toHaveAttribute('data-hydrated', 'true');
  const bar = page.getByTestId('replay-bar');
  await expect(bar).toBeVisible();
  await expect(page.getByTestId('replay-scrub')).toHaveValue('1501');
  const at1501 = await replayed(1501);
  expect(levelsOf(at1501)).toEqual([[(30000 + 40 * Math.sin(300 / 25)).toFixed(2).replace(/\.?0+$/, ''), '0.01']]);
  await expect.poll(() => bookShown(page)).toEqual(levelsOf(at1501));
  await expect(page.getByTestId('tape').locator('tbody tr').first().locator('td.price')).toHaveText(at1501.trades[0].price);
  await expect(page.getByTestId('spread').locator('.last')).toHaveText(at1501.trades[0].price);
  await expect(page.getByTestId('replay-when')).toContainText('UTC');
  await expect(page.getByTestId('replay-chart')).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('replay.png') });

  // Scrubbing to another moment: the maker's first two asks, nothing else.
  // The 3,000 seeded events, then the server's fence as it took the lead
  // at start (3,001st), then the maker's asks (3,002nd and 3,003rd).
  const total = Number(await page.getByTestId('replay-scrub').getAttribute('max'));
  expect(total).toBe(at1501.total);
  await page.getByTestId('replay-scrub').fill('3003');
  await expect.poll(() => bookShown(page)).toEqual([
    ['30004', '0.02'],
    ['30001', '0.01'],
  ]);
  expect(levelsOf(await replayed(3003))).toEqual(await bookShown(page));
  expect(page.url()).toContain('replay=3003');

  // A drag: sixty moves in one go ask the server for the first moment and
  // then once more, for where the drag stopped (replays are costly reads,
  // paced per address).
  await page.getByTestId('replay-scrub').fill('1501');
  await expect.poll(() => bookShown(page)).toEqual(levelsOf(at1501));
  const asked: string[] = [];
  page.on('request', (r) => {
    if (r.url().includes('replay_market')) asked.push(r.postData() ?? '');
  });
  await page.getByTestId('replay-scrub').evaluate((el: HTMLInputElement) => {
    for (let n = 2944; n <= 3003; n += 1) {
      el.value = String(n);
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }
  });
  await expect.poll(() => bookShown(page)).toEqual([
    ['30004', '0.02'],
    ['30001', '0.01'],
  ]);
  expect(asked.length).toBe(2);
  expect(asked[0]).toContain('events=2944');
  expect(asked[1]).toContain('events=3003');

  // Playing moves forward in time.
  await page.getByTestId('replay-scrub').fill('1501');
  await expect.poll(() => bookShown(page)).toEqual(levelsOf(at1501));
  await bar.getByLabel('Speed').selectOption('100');
  await page.getByTestId('replay-play').click();
  await expect.poll(async () => Number(await page.getByTestId('replay-scrub').inputValue())).toBeGreaterThan(1510);
  await page.getByTestId('replay-play').click();

  // One click back to the live market, and the address forgets the moment.
  await bar.getByRole('button', { name: 'Back to live' }).click();
  await expect(bar).toBeHidden();
  await expect(bestAsk(page).locator('td.price')).toHaveText('30001');
  await expect(bestAsk(page).locator('td').nth(1)).toHaveText('0.005');
  expect(page.url()).not.toContain('replay=');
  // And into it again from the header, at the present.
  await page.getByTestId('replay').click();
  await expect(bar).toBeVisible();
  await expect(page.getByTestId('replay-scrub')).toHaveValue(String(total));
  await context.close();
});

test('the keyboard reaches every control, and every control has a name', async ({ browser }) => {
  const page = await open(browser, 1280, 720);
  const controls = await page.evaluate(() => {
    const all = [...document.querySelectorAll<HTMLElement>('button, select, input, canvas[tabindex], a[href]')];
    const visible = all.filter((el) => el.getClientRects().length > 0 && (el as HTMLInputElement).type !== 'hidden');
    return visible.map((el, i) => {
      el.dataset.control = String(i);
      const labels = (el as HTMLInputElement).labels;
      const name =
        el.getAttribute('aria-label') ||
        (labels && labels.length ? labels[0].textContent : '') ||
        el.textContent ||
        '';
      const radio = (el as HTMLInputElement).type === 'radio' ? (el as HTMLInputElement).name : '';
      return { i: String(i), name: name.trim(), radio, what: el.outerHTML.slice(0, 80) };
    });
  });
  expect(controls.length).toBeGreaterThan(20);
  for (const c of controls) expect(c.name, c.what).not.toBe('');
  const reached = new Set<string>();
  for (let n = 0; n < controls.length + 10; n++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.control);
    if (at) reached.add(at);
  }
  // A radio group is one stop: its arrow keys move within it.
  const groups = new Set(controls.filter((c) => c.radio && reached.has(c.i)).map((c) => c.radio));
  const missed = controls.filter((c) => !reached.has(c.i) && !(c.radio && groups.has(c.radio)));
  expect(missed.map((c) => c.what)).toEqual([]);
  await page.context().close();
});
