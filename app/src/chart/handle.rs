//! The chart's data and drawing state, kept out of the reactive tree, and
//! what a live trade needs drawn: the one candle it changed onto the
//! picture, or a full redraw on the next frame when the axes must change.

use std::ops::Range;

use leptos::prelude::*;

use super::axes::{Axes, View};
use crate::api::{CandleHistory, TradeView};
use crate::candles::{Candle, Change, Interval, Series};

/// How candles are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Candles,
    Line,
}

/// The moving averages the chart can draw over the closes.
pub const AVERAGES: [usize; 3] = [7, 25, 99];

/// Everything the chart knows, kept out of the reactive graph.
pub struct ChartState {
    pub series: Vec<Series>,
    pub interval: Interval,
    pub style: Style,
    pub view: View,
    /// Which of [`AVERAGES`] are drawn.
    pub averages: [bool; 3],
    pub axes: Option<Axes>,
    /// Intervals whose oldest candle is loaded: nothing earlier to fetch.
    pub(super) complete: Vec<Interval>,
    pub(super) frame_pending: bool,
    #[cfg(feature = "hydrate")]
    pub(super) canvas: Option<web_sys::HtmlCanvasElement>,
}

impl ChartState {
    /// Every loaded candle of the interval shown, oldest first.
    pub fn candles(&self) -> &[Candle] {
        self.series
            .iter()
            .find(|s| s.interval == self.interval)
            .map_or(&[][..], |s| &s.candles[..])
    }

    /// The indices in [`ChartState::candles`] of the candles in view.
    pub fn shown(&self) -> Range<usize> {
        let all = self.candles();
        let shown = self.view.shown(all, self.interval);
        let from = shown.first().map_or(all.len(), |c| {
            all.partition_point(|other| other.start_ms < c.start_ms)
        });
        from..from + shown.len()
    }

    fn lines(&self) -> bool {
        self.style == Style::Line || self.averages.contains(&true)
    }

    /// The columns an append paints afresh: the last candle's, and for a
    /// line (the price or an average) also the one before, which its last
    /// segment crosses.
    pub(super) fn fresh_columns(&self) -> usize {
        if self.lines() { 2 } else { 1 }
    }

    /// The candles an append needs: the fresh ones and, for lines, the
    /// point their first fresh segment starts from.
    fn tail(&self) -> usize {
        self.fresh_columns() + usize::from(self.lines())
    }
}

/// What the page shows over the canvas as HTML, kept up to date by the
/// handle: the last price's line and label, and which candles are in view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overlay {
    /// The last price, whether it rose from the candle's open, and its
    /// height as a share of the canvas (0 at the top) while in the plot.
    pub last: Option<(String, bool, Option<f64>)>,
    /// The start of the first candle in view.
    pub first_shown_ms: Option<u64>,
    /// Candles loaded for the interval shown.
    pub loaded: usize,
}

/// What pushing a trade did to the picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drawn {
    /// The changed candle was drawn onto the existing picture.
    Appended,
    /// The axes must change: a full redraw waits for the next frame.
    Scheduled,
    /// The picture did not change (an old trade, or one out of view).
    Unchanged,
}

/// The way into a chart: push trades, swap data, change what is shown.
#[derive(Clone, Copy)]
pub struct ChartHandle {
    pub(super) state: StoredValue<ChartState, Storage>,
    pub overlay: RwSignal<Overlay>,
}

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
        ChartHandle {
            state: StoredValue::new_with_storage(ChartState {
                series,
                interval: Interval::M1,
                style: Style::Candles,
                view: View::default(),
                averages: [false; 3],
                axes: None,
                complete: Vec::new(),
                frame_pending: false,
                #[cfg(feature = "hydrate")]
                canvas: None,
            }),
            overlay: RwSignal::new(Overlay::default()),
        }
    }

    /// Adds a live trade: draws the candle it changed, or schedules a
    /// redraw when it does not fit the axes.
    pub fn push(&self, trade: &TradeView) -> Drawn {
        let (price, quantity) = trade.amounts();
        let mut redraw = false;
        let mut append = None;
        let mut last = None;
        self.state.update_value(|s| {
            let shown = s.interval;
            let tail = s.tail();
            let live = s.view.end_ms.is_none();
            let axes = s.axes;
            let pending = s.frame_pending;
            for series in &mut s.series {
                let change = series.add(trade.at_ms, price, quantity);
                if series.interval != shown || change == Change::Ignored {
                    continue;
                }
                let candle = *series.candles.last().expect("a trade was just added");
                last = Some((candle.close, candle.close >= candle.open, axes));
                match axes {
                    Some(a) if a.holds(&candle, shown) && !pending => {
                        let len = series.candles.len();
                        append = Some(len.saturating_sub(tail)..len);
                    }
                    // Looking at the past: the new candle is out of view.
                    Some(a) if !live && candle.start_ms as f64 >= a.x.1 => {}
                    _ => redraw = true,
                }
            }
        });
        if let Some((close, up, axes)) = last {
            let height = axes.and_then(|a| a.height_of(close, self.canvas_height()));
            self.overlay
                .update(|o| o.last = Some((close.to_string(), up, height)));
        }
        if redraw {
            self.schedule();
            Drawn::Scheduled
        } else if let Some(tail) = append {
            self.draw_tail(tail);
            Drawn::Appended
        } else {
            Drawn::Unchanged
        }
    }

    /// Replaces the data (a new market's snapshot) and redraws, following
    /// the live candle again.
    pub fn reset(&self, series: Vec<Series>) {
        self.state.update_value(|s| {
            s.series = series;
            s.complete.clear();
            s.view.follow_live();
        });
        self.schedule();
    }

    pub fn show(&self, interval: Interval, style: Style, averages: [bool; 3]) {
        self.state.update_value(|s| {
            if s.interval != interval {
                s.view.follow_live();
            }
            s.interval = interval;
            s.style = style;
            s.averages = averages;
        });
        self.schedule();
    }

    /// Changes the stretch of time in view (zoom, pan, back to live) and
    /// redraws.
    pub fn change_view(&self, change: impl FnOnce(&mut View, &[Candle], Interval)) {
        self.state.update_value(|s| {
            let mut view = s.view;
            change(&mut view, s.candles(), s.interval);
            s.view = view;
        });
        self.schedule();
    }

    /// Where older candles should be fetched from: the interval shown and
    /// the start of its oldest loaded candle, when the view reaches back
    /// past it and the market has older ones.
    pub fn wants_older(&self) -> Option<(Interval, u64)> {
        self.state.with_value(|s| {
            let first = s.candles().first()?;
            let (x0, _) = s.view.range(s.candles(), s.interval)?;
            let short = x0 < first.start_ms as f64;
            (short && !s.complete.contains(&s.interval)).then_some((s.interval, first.start_ms))
        })
    }

    /// Puts fetched older candles in front of the interval's series, if its
    /// oldest candle is still the one they were fetched before.
    pub fn prepend(&self, interval: Interval, before_ms: u64, history: CandleHistory) {
        self.state.update_value(|s| {
            let Some(series) = s.series.iter_mut().find(|s| s.interval == interval) else {
                return;
            };
            if series.candles.first().map(|c| c.start_ms) != Some(before_ms) {
                return;
            }
            series.prepend(&history.candles);
            if !history.earlier && !s.complete.contains(&interval) {
                s.complete.push(interval);
            }
        });
        self.schedule();
    }

    /// The candle under a horizontal position (a fraction of the canvas
    /// width), for the tooltip.
    pub fn candle_at(&self, fraction: f64, canvas_width: f64) -> Option<(Candle, Interval)> {
        self.state.with_value(|s| {
            let t = s.axes?.time_at(fraction * canvas_width)?;
            s.candles()[s.shown()]
                .iter()
                .find(|c| t >= c.start_ms as f64 && t < (c.start_ms + s.interval.millis()) as f64)
                .map(|c| (*c, s.interval))
        })
    }

    /// Where a horizontal position (a fraction of the canvas width) is
    /// across the time axis, 0 to 1: the anchor of a zoom under the pointer.
    pub fn across_plot(&self, fraction: f64, canvas_width: f64) -> f64 {
        self.state.with_value(|s| {
            s.axes.map_or(1.0, |a| {
                let (p0, p1) = (f64::from(a.plot_x.0), f64::from(a.plot_x.1));
                if p1 > p0 {
                    ((fraction * canvas_width - p0) / (p1 - p0)).clamp(0.0, 1.0)
                } else {
                    1.0
                }
            })
        })
    }

    /// Sets the overlay from the state after a full redraw.
    #[cfg(feature = "hydrate")]
    pub(super) fn refresh_overlay(&self) {
        let height = self.canvas_height();
        let overlay = self.state.with_value(|s| {
            let all = s.candles();
            let shown = s.shown();
            let last = all.last().map(|c| {
                let at = s.axes.and_then(|a| a.height_of(c.close, height));
                (c.close.to_string(), c.close >= c.open, at)
            });
            Overlay {
                last,
                first_shown_ms: all
                    .get(shown.start)
                    .filter(|_| !shown.is_empty())
                    .map(|c| c.start_ms),
                loaded: all.len(),
            }
        });
        self.overlay.set(overlay);
    }

    #[cfg(not(feature = "hydrate"))]
    fn schedule(&self) {}

    #[cfg(not(feature = "hydrate"))]
    fn draw_tail(&self, _: Range<usize>) {}

    #[cfg(not(feature = "hydrate"))]
    fn canvas_height(&self) -> f64 {
        0.0
    }

    #[cfg(not(feature = "hydrate"))]
    pub fn refit(&self) {}

    #[cfg(not(feature = "hydrate"))]
    pub fn canvas_width(&self) -> f64 {
        1.0
    }
}
