//! Where a candle goes on the canvas: the data ranges of the last full draw
//! and the plot's pixels, and whether a new candle still fits them.

use crate::candles::{Candle, Interval};

/// Candles across the chart when it opens, the live one the last of them.
pub const VISIBLE: usize = 90;
/// Empty candle slots kept to the right, so new candles usually fit.
pub const HEADROOM: usize = 8;
/// The fewest and the most candle slots zooming can show.
pub const MIN_SPAN: usize = 20;
pub const MAX_SPAN: usize = 1000;

/// Which stretch of time the chart shows: `span` candle slots, ending at
/// `end_ms` or, when that is `None`, following the live candle (which then
/// sits [`HEADROOM`] slots from the right edge).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub span: usize,
    pub end_ms: Option<f64>,
}

impl Default for View {
    fn default() -> View {
        View {
            span: VISIBLE + HEADROOM,
            end_ms: None,
        }
    }
}

impl View {
    /// Where the time axis ends when following the live candle.
    fn live_end(candles: &[Candle], interval: Interval) -> Option<f64> {
        let last = candles.last()?;
        Some(last.start_ms as f64 + interval.millis() as f64 * (HEADROOM as f64 + 1.0))
    }

    /// The time range shown, `None` while there are no candles.
    pub fn range(&self, candles: &[Candle], interval: Interval) -> Option<(f64, f64)> {
        let end = match self.end_ms {
            Some(end) => end,
            None => View::live_end(candles, interval)?,
        };
        Some((end - interval.millis() as f64 * self.span as f64, end))
    }

    /// The candles that start inside the range (oldest first).
    pub fn shown<'c>(&self, candles: &'c [Candle], interval: Interval) -> &'c [Candle] {
        let Some((x0, x1)) = self.range(candles, interval) else {
            return &[];
        };
        let from = candles.partition_point(|c| (c.start_ms as f64) < x0);
        let to = candles.partition_point(|c| (c.start_ms as f64) < x1);
        &candles[from..to]
    }

    /// Zooms by `factor` (above 1 shows more time) keeping the time at
    /// `anchor` (0 = left edge, 1 = right edge) where it is. Following the
    /// live candle, the right edge stays put.
    pub fn zoom(&mut self, factor: f64, anchor: f64, candles: &[Candle], interval: Interval) {
        let Some((x0, x1)) = self.range(candles, interval) else {
            return;
        };
        let span = ((self.span as f64 * factor).round() as usize).clamp(MIN_SPAN, MAX_SPAN);
        if self.end_ms.is_some() {
            let anchor = anchor.clamp(0.0, 1.0);
            let at = x0 + anchor * (x1 - x0);
            let width = interval.millis() as f64 * span as f64;
            self.end_ms = Some(at + (1.0 - anchor) * width);
        }
        self.span = span;
        self.settle(candles, interval);
    }

    /// Moves the range by `slots` candle slots (negative: back in time).
    pub fn pan(&mut self, slots: f64, candles: &[Candle], interval: Interval) {
        let Some((_, x1)) = self.range(candles, interval) else {
            return;
        };
        self.end_ms = Some(x1 + slots * interval.millis() as f64);
        self.settle(candles, interval);
    }

    /// Back to following the live candle.
    pub fn follow_live(&mut self) {
        self.end_ms = None;
    }

    /// A range reaching the live end follows it again; one may go back
    /// until a few candles of the oldest loaded remain in sight.
    fn settle(&mut self, candles: &[Candle], interval: Interval) {
        let (Some(end), Some(live), Some(first)) = (
            self.end_ms,
            View::live_end(candles, interval),
            candles.first(),
        ) else {
            return;
        };
        let step = interval.millis() as f64;
        if end >= live {
            self.end_ms = None;
        } else {
            self.end_ms = Some(end.max(first.start_ms as f64 + step * MIN_SPAN as f64 / 2.0));
        }
    }
}

/// The mapping of the last full draw: data ranges and the plot's pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axes {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub volume_max: f64,
    /// The price plot's pixel rectangle, in canvas pixels.
    pub plot_x: (i32, i32),
    pub plot_y: (i32, i32),
}

impl Axes {
    /// Axes over the time `range` that hold the given candles (the ones
    /// shown) with some room to grow in price and volume.
    pub fn around(candles: &[Candle], range: (f64, f64)) -> Option<Axes> {
        if candles.is_empty() {
            return None;
        }
        let low = candles.iter().map(|c| c.low).fold(f64::MAX, f64::min);
        let high = candles.iter().map(|c| c.high).fold(f64::MIN, f64::max);
        let pad = ((high - low) * 0.08).max(high.abs() * 0.001).max(1e-9);
        let volume = candles.iter().map(|c| c.volume).fold(0.0, f64::max);
        Some(Axes {
            x: range,
            y: (low - pad, high + pad),
            volume_max: (volume * 1.15).max(1e-12),
            plot_x: (0, 0),
            plot_y: (0, 0),
        })
    }

    /// Where a price is across the canvas's height, 0 at the top, or
    /// `None` outside the price plot.
    pub fn height_of(&self, price: f64, canvas_height: f64) -> Option<f64> {
        let (top, bottom) = (f64::from(self.plot_y.0), f64::from(self.plot_y.1));
        if !(self.y.0..=self.y.1).contains(&price) || bottom <= top || canvas_height <= 0.0 {
            return None;
        }
        let y = bottom - (price - self.y.0) / (self.y.1 - self.y.0) * (bottom - top);
        Some(y / canvas_height)
    }

    /// The time at a horizontal canvas pixel, `None` outside the plot.
    pub fn time_at(&self, px: f64) -> Option<f64> {
        let (p0, p1) = (f64::from(self.plot_x.0), f64::from(self.plot_x.1));
        if p1 <= p0 || px < p0 || px > p1 {
            return None;
        }
        Some(self.x.0 + (px - p0) / (p1 - p0) * (self.x.1 - self.x.0))
    }

    /// Whether a candle can be drawn without changing the axes.
    pub fn holds(&self, c: &Candle, interval: Interval) -> bool {
        let end = c.start_ms as f64 + interval.millis() as f64;
        c.start_ms as f64 >= self.x.0
            && end <= self.x.1
            && c.low >= self.y.0
            && c.high <= self.y.1
            && c.volume <= self.volume_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(start_ms: u64) -> Candle {
        Candle {
            start_ms,
            open: 10.0,
            high: 11.0,
            low: 9.0,
            close: 10.5,
            volume: 1.0,
        }
    }

    /// Where a candle's start falls across the time axis, 0 to 1.
    fn across(axes: &Axes, c: &Candle) -> f64 {
        (c.start_ms as f64 - axes.x.0) / (axes.x.1 - axes.x.0)
    }

    fn axes(candles: &[Candle], view: View) -> Axes {
        let range = view.range(candles, Interval::M1).unwrap();
        Axes::around(view.shown(candles, Interval::M1), range).unwrap()
    }

    #[test]
    fn the_latest_candle_sits_at_the_right_however_few_there_are() {
        let minute = Interval::M1.millis();
        let one = [candle(100 * minute)];
        let a = axes(&one, View::default());
        let right = across(&a, &one[0]);
        assert!(right > 0.85 && right < 1.0, "{right}");
        assert!(a.holds(&one[0], Interval::M1));
        // A full chart: the same place for the latest, the first of the
        // VISIBLE at the left edge, and the next candle still fits.
        let full: Vec<Candle> = (0..VISIBLE as u64).map(|i| candle(i * minute)).collect();
        let a = axes(&full, View::default());
        assert!((across(&a, full.last().unwrap()) - right).abs() < 1e-9);
        assert_eq!(View::default().shown(&full, Interval::M1).len(), VISIBLE);
        assert!(full.iter().all(|c| a.holds(c, Interval::M1)));
        assert!(a.holds(&candle(VISIBLE as u64 * minute), Interval::M1));
    }

    #[test]
    fn zoom_and_pan_move_over_the_history_and_come_back_to_live() {
        let m = Interval::M1;
        let minute = m.millis() as f64;
        let candles: Vec<Candle> = (0..2000u64).map(|i| candle(i * m.millis())).collect();
        let mut view = View::default();
        let live = view.range(&candles, m).unwrap();
        // Zooming out while live keeps the right edge and shows more.
        view.zoom(2.0, 0.3, &candles, m);
        assert_eq!(view.end_ms, None);
        let wide = view.range(&candles, m).unwrap();
        assert_eq!(wide.1, live.1);
        assert_eq!(view.shown(&candles, m).len(), view.span - HEADROOM);
        // Panning back leaves live; zooming there keeps the anchored time.
        view.pan(-500.0, &candles, m);
        let (x0, x1) = view.range(&candles, m).unwrap();
        assert_eq!(x1, wide.1 - 500.0 * minute);
        let middle = (x0 + x1) / 2.0;
        view.zoom(0.5, 0.5, &candles, m);
        let (y0, y1) = view.range(&candles, m).unwrap();
        assert!(
            ((y0 + y1) / 2.0 - middle).abs() < minute,
            "{y0} {y1} {middle}"
        );
        // Zoom has limits; panning far back stops near the first candle.
        for _ in 0..50 {
            view.zoom(0.5, 0.5, &candles, m);
        }
        assert_eq!(view.span, MIN_SPAN);
        for _ in 0..50 {
            view.zoom(3.0, 0.5, &candles, m);
        }
        assert_eq!(view.span, MAX_SPAN);
        view.pan(-1e9, &candles, m);
        assert!(!view.shown(&candles, m).is_empty());
        assert_eq!(view.shown(&candles, m)[0].start_ms, 0);
        // Panning forward past the latest candle follows live again.
        view.pan(1e9, &candles, m);
        assert_eq!(view.end_ms, None);
    }

    #[test]
    fn a_price_maps_to_its_height_in_the_plot() {
        let mut a = axes(&[candle(0)], View::default());
        a.plot_y = (10, 110);
        let (low, high) = a.y;
        assert_eq!(a.height_of(high, 200.0), Some(0.05));
        assert_eq!(a.height_of(low, 200.0), Some(0.55));
        assert_eq!(a.height_of(high + 1.0, 200.0), None);
    }
}
