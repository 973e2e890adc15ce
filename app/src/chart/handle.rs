//! The chart's data and drawing state, kept out of the reactive tree, and
//! what a live trade needs drawn: the one candle it changed onto the
//! picture, or a full redraw on the next frame when the axes must change.

use leptos::prelude::*;

use super::axes::{Axes, VISIBLE};
use crate::api::TradeView;
use crate::candles::{Candle, Change, Interval, Series};

/// How candles are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Candles,
    Line,
}

impl Style {
    /// The columns an append paints afresh: the last candle's, and for a
    /// line also the one before, which its last segment crosses.
    pub(super) fn fresh_columns(self) -> usize {
        match self {
            Style::Candles => 1,
            Style::Line => 2,
        }
    }

    /// The candles an append needs: the fresh ones and, for a line, the
    /// point its first fresh segment starts from.
    pub(super) fn tail(self) -> usize {
        self.fresh_columns() + usize::from(self == Style::Line)
    }
}

/// Everything the chart knows, kept out of the reactive graph.
pub struct ChartState {
    pub series: Vec<Series>,
    pub interval: Interval,
    pub style: Style,
    pub axes: Option<Axes>,
    pub(super) frame_pending: bool,
    #[cfg(feature = "hydrate")]
    pub(super) canvas: Option<web_sys::HtmlCanvasElement>,
}

impl ChartState {
    pub(super) fn visible(&self) -> &[Candle] {
        let candles = self
            .series
            .iter()
            .find(|s| s.interval == self.interval)
            .map_or(&[][..], |s| &s.candles[..]);
        &candles[candles.len().saturating_sub(VISIBLE)..]
    }
}

/// What pushing a trade did to the picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drawn {
    /// The changed candle was drawn onto the existing picture.
    Appended,
    /// The axes must change: a full redraw waits for the next frame.
    Scheduled,
    /// The shown interval did not change (an old trade).
    Unchanged,
}

/// The way into a chart: push trades, swap data, change what is shown.
#[derive(Clone, Copy)]
pub struct ChartHandle(pub(super) StoredValue<ChartState, Storage>);

/// In the browser the state holds the canvas, which must stay on its thread.
/// The server renders on a thread pool and may drop the page's reactive
/// owner on another thread than the one that made it, so there the state
/// (which has no canvas) is stored as thread-safe.
#[cfg(feature = "hydrate")]
type Storage = LocalStorage;
#[cfg(not(feature = "hydrate"))]
type Storage = SyncStorage;

impl ChartHandle {
    pub fn new(series: Vec<Series>) -> ChartHandle {
        ChartHandle(StoredValue::new_with_storage(ChartState {
            series,
            interval: Interval::M1,
            style: Style::Candles,
            axes: None,
            frame_pending: false,
            #[cfg(feature = "hydrate")]
            canvas: None,
        }))
    }

    /// Adds a live trade: draws the candle it changed, or schedules a
    /// redraw when it does not fit the axes.
    pub fn push(&self, trade: &TradeView) -> Drawn {
        let (price, quantity) = trade.amounts();
        let mut redraw = false;
        let mut append = None;
        self.0.update_value(|s| {
            let shown = s.interval;
            let tail = s.style.tail();
            for series in &mut s.series {
                let change = series.add(trade.at_ms, price, quantity);
                if series.interval == shown && change != Change::Ignored {
                    let last = *series.candles.last().expect("a trade was just added");
                    match s.axes {
                        Some(a) if a.holds(&last, shown) && !s.frame_pending => {
                            let from = series.candles.len().saturating_sub(tail);
                            append = Some(series.candles[from..].to_vec());
                        }
                        _ => redraw = true,
                    }
                }
            }
        });
        if redraw {
            self.schedule();
            Drawn::Scheduled
        } else if let Some(tail) = append {
            self.draw_tail(&tail);
            Drawn::Appended
        } else {
            Drawn::Unchanged
        }
    }

    /// Replaces the data (a new market's snapshot) and redraws.
    pub fn reset(&self, series: Vec<Series>) {
        self.0.update_value(|s| s.series = series);
        self.schedule();
    }

    pub fn show(&self, interval: Interval, style: Style) {
        self.0.update_value(|s| {
            s.interval = interval;
            s.style = style;
        });
        self.schedule();
    }

    /// The candle under a horizontal position (a fraction of the canvas
    /// width), for the tooltip.
    pub fn candle_at(&self, fraction: f64, canvas_width: f64) -> Option<(Candle, Interval)> {
        self.0.with_value(|s| {
            let a = s.axes?;
            let (p0, p1) = (a.plot_x.0 as f64, a.plot_x.1 as f64);
            let px = fraction * canvas_width;
            if p1 <= p0 || px < p0 || px > p1 {
                return None;
            }
            let t = a.x.0 + (px - p0) / (p1 - p0) * (a.x.1 - a.x.0);
            s.visible()
                .iter()
                .find(|c| t >= c.start_ms as f64 && t < (c.start_ms + s.interval.millis()) as f64)
                .map(|c| (*c, s.interval))
        })
    }

    #[cfg(not(feature = "hydrate"))]
    fn schedule(&self) {}

    #[cfg(not(feature = "hydrate"))]
    fn draw_tail(&self, _: &[Candle]) {}
}
