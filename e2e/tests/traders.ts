import { APIRequestContext, expect, request as playwrightRequest } from '@playwright/test';

/** A trader driving the server functions directly, as a second browser would. */
export async function trader(baseURL: string, name: string): Promise<APIRequestContext> {
  const api = await playwrightRequest.newContext({ baseURL, extraHTTPHeaders: { accept: 'application/json' } });
  for (const [fn, form] of [
    ['sign_up', { username: name, password: 'correct horse battery' }],
    ['claim_faucet', {}],
  ] as const) {
    const r = await api.post(`/api/${fn}`, { form });
    expect(r.status(), await r.text()).toBe(200);
  }
  return api;
}

/** Places a good-till-cancelled limit order. */
export async function limit(api: APIRequestContext, symbol: string, side: string, price: string, quantity: string) {
  const r = await api.post('/api/place_order', {
    form: { symbol, side, order_type: 'limit', price, quantity, time_in_force: 'GTC' },
  });
  expect(r.status(), await r.text()).toBe(200);
}
