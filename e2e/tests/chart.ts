import { Page } from '@playwright/test';

/** A fingerprint of the price chart's canvas pixels. */
export async function pixels(page: Page): Promise<number> {
  return page.getByTestId('chart').evaluate((node) => {
    const c = node as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + 3 * d[i + 1] + 7 * d[i + 2]) >>> 0;
    return h;
  });
}
