//! Painting with plotters on the canvas (browser only): a full redraw once
//! per animation frame at most, and the append of the candles a trade
//! changed onto the existing picture.

use std::ops::Range;

use leptos::prelude::*;
use plotters::coord::ranged1d::{BoldPoints, Ranged};
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

use super::axes::Axes;
use super::handle::{AVERAGES, ChartHandle, ChartState, Style};
use crate::candles::Candle;
use crate::time_format::time_label;

const BG: RGBColor = RGBColor(0x11, 0x15, 0x1c);
const GRID: RGBColor = RGBColor(0x22, 0x29, 0x34);
const TEXT: RGBColor = RGBColor(0x9a, 0xa4, 0xb2);
const UP: RGBColor = RGBColor(0x3d, 0xd6, 0x8c);
const DOWN: RGBColor = RGBColor(0xf0, 0x61, 0x6d);
const LINE: RGBColor = RGBColor(0x4c, 0x8d, 0xff);
/// One colour per moving average of [`AVERAGES`].
const AVERAGE_COLOURS: [RGBColor; 3] = [
    RGBColor(0xf5, 0xc2, 0x42),
    RGBColor(0xc0, 0x7c, 0xf0),
    RGBColor(0x4f, 0xc9, 0xd8),
];

/// Price labels, and so horizontal grid lines, on the price axis.
const Y_LABELS: usize = 6;

/// The share of the height the volume bars take.
const VOLUME_SHARE: f64 = 0.2;

fn dpr() -> f64 {
    web_sys::window()
        .map_or(1.0, |w| w.device_pixel_ratio())
        .max(1.0)
}

impl ChartHandle {
    /// Gives the handle its canvas, sized in device pixels to the box the
    /// page lays it out in (which fills the chart panel).
    pub fn attach(&self, canvas: web_sys::HtmlCanvasElement) {
        let ratio = dpr();
        let css_width = f64::from(canvas.client_width().max(320));
        let laid_out = f64::from(canvas.client_height());
        let css_height = if laid_out >= 120.0 {
            laid_out
        } else {
            (css_width * 0.5).clamp(240.0, 520.0)
        };
        let (w, h) = ((css_width * ratio) as u32, (css_height * ratio) as u32);
        if canvas.width() != w || canvas.height() != h {
            canvas.set_width(w);
            canvas.set_height(h);
        }
        self.state.update_value(|s| s.canvas = Some(canvas));
    }

    /// Fits the canvas to its box again and redraws: after a resize, or
    /// after being shown again.
    pub fn refit(&self) {
        if let Some(canvas) = self.state.with_value(|s| s.canvas.clone()) {
            self.attach(canvas);
            self.schedule();
        }
    }

    pub fn canvas_width(&self) -> f64 {
        self.state
            .with_value(|s| s.canvas.as_ref().map_or(1.0, |c| f64::from(c.width())))
    }

    pub(super) fn canvas_height(&self) -> f64 {
        self.state
            .with_value(|s| s.canvas.as_ref().map_or(0.0, |c| f64::from(c.height())))
    }

    /// Asks for one full redraw at the next animation frame.
    pub(super) fn schedule(&self) {
        let already = self
            .state
            .try_update_value(|s| std::mem::replace(&mut s.frame_pending, true));
        if already != Some(false) {
            return;
        }
        let handle = *self;
        let callback = Closure::once_into_js(move || {
            handle.state.update_value(|s| s.frame_pending = false);
            handle.redraw();
        });
        if let Some(w) = web_sys::window() {
            let _ = w.request_animation_frame(callback.unchecked_ref());
        }
    }

    /// Draws everything, choosing new axes.
    pub fn redraw(&self) {
        self.state.update_value(|s| {
            let Some(canvas) = s.canvas.clone() else {
                return;
            };
            let shown = s.shown();
            s.axes = s
                .view
                .range(s.candles(), s.interval)
                .and_then(|range| Axes::around(&s.candles()[shown.clone()], range));
            if let Some((plot_x, plot_y)) = paint(&canvas, s, shown, true)
                && let Some(a) = s.axes.as_mut()
            {
                a.plot_x = plot_x;
                a.plot_y = plot_y;
            }
        });
        self.refresh_overlay();
    }

    /// Draws the last candles onto the existing picture (see `paint`).
    pub(super) fn draw_tail(&self, tail: Range<usize>) {
        self.state.update_value(|s| {
            let Some(canvas) = s.canvas.clone() else {
                return;
            };
            paint(&canvas, s, tail, false);
        });
    }
}

/// The moving average of `period` closes ending at candle `i`, once there
/// are that many.
fn average(all: &[Candle], i: usize, period: usize) -> Option<f64> {
    let from = (i + 1).checked_sub(period)?;
    Some(all[from..=i].iter().map(|c| c.close).sum::<f64>() / period as f64)
}

/// Paints the candles at `range` of the interval's series with the
/// state's axes: everything (background, mesh, labels) when `full`.
/// Otherwise `range` is the tail of the series: the columns of the last
/// candle (and, for lines, of the one before, which their last segment
/// crosses) are cleared, their grid lines put back, and what lies in them
/// drawn again, so nothing is painted twice. Returns the price plot's
/// horizontal and vertical pixel ranges.
pub(super) fn paint(
    canvas: &web_sys::HtmlCanvasElement,
    s: &ChartState,
    range: Range<usize>,
    full: bool,
) -> Option<((i32, i32), (i32, i32))> {
    let all = s.candles();
    let candles = &all[range.clone()];
    let backend = CanvasBackend::with_canvas_object(canvas.clone())?;
    let root = backend.into_drawing_area();
    let ratio = dpr();
    if full {
        root.fill(&BG).ok()?;
    }
    let Some(axes) = s.axes else {
        if full {
            let font = ("sans-serif", 15.0 * ratio).into_font().color(&TEXT);
            let (w, h) = root.dim_in_pixel();
            root.draw(&Text::new(
                "No trades yet",
                (w as i32 / 2 - (60.0 * ratio) as i32, h as i32 / 2),
                font,
            ))
            .ok()?;
            root.present().ok()?;
        }
        return None;
    };
    let (_, h) = root.dim_in_pixel();
    let split = (f64::from(h) * (1.0 - VOLUME_SHARE)) as u32;
    let (upper, lower) = root.split_vertically(split);
    let label = (12.0 * ratio) as u32;
    let font = ("sans-serif", 12.0 * ratio).into_font().color(&TEXT);
    let interval = s.interval;
    let mut price = ChartBuilder::on(&upper)
        .margin_top((8.0 * ratio) as u32)
        .margin_right((8.0 * ratio) as u32)
        .y_label_area_size(label * 6)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
        .ok()?;
    let mut volume = ChartBuilder::on(&lower)
        .margin_right((8.0 * ratio) as u32)
        .margin_bottom((4.0 * ratio) as u32)
        .x_label_area_size(label * 2)
        .y_label_area_size(label * 6)
        .build_cartesian_2d(axes.x.0..axes.x.1, 0.0..axes.volume_max)
        .ok()?;
    if full {
        price
            .configure_mesh()
            .disable_x_mesh()
            .bold_line_style(GRID)
            .light_line_style(BG)
            .axis_style(GRID)
            .x_labels(0)
            .y_labels(Y_LABELS)
            .label_style(font.clone())
            .draw()
            .ok()?;
        volume
            .configure_mesh()
            .disable_mesh()
            .axis_style(GRID)
            .x_labels(6)
            .y_labels(2)
            .x_label_formatter(&|x| time_label(*x, interval))
            .label_style(font)
            .draw()
            .ok()?;
    }
    let step = interval.millis() as f64;
    let (x_pixels, y_pixels) = price.plotting_area().get_pixel_range();
    let px_per_ms = f64::from(x_pixels.end - x_pixels.start) / (axes.x.1 - axes.x.0);
    let body = ((step * px_per_ms * 0.7) as u32).max(1);
    let center = |c: &Candle| c.start_ms as f64 + step / 2.0;
    // The candles whose columns are painted afresh.
    let fresh = if full {
        candles
    } else {
        &candles[candles.len().saturating_sub(s.fresh_columns())..]
    };
    if !full && let (Some(first), Some(last)) = (fresh.first(), fresh.last()) {
        let (a, b) = (first.start_ms as f64, last.start_ms as f64 + step);
        let clear = |y0, y1| Rectangle::new([(a, y0), (b, y1)], BG.filled());
        price.draw_series([clear(axes.y.0, axes.y.1)]).ok()?;
        volume.draw_series([clear(0.0, axes.volume_max)]).ok()?;
        // The mesh's horizontal lines, as `configure_mesh` placed them.
        let grid = price
            .as_coord_spec()
            .y_spec()
            .key_points(BoldPoints(Y_LABELS));
        price
            .draw_series(
                grid.into_iter()
                    .map(|y| PathElement::new(vec![(a, y), (b, y)], GRID)),
            )
            .ok()?;
    }
    match s.style {
        Style::Candles => {
            price
                .draw_series(fresh.iter().map(|c| {
                    CandleStick::new(
                        center(c),
                        c.open,
                        c.high,
                        c.low,
                        c.close,
                        UP.filled(),
                        DOWN.filled(),
                        body,
                    )
                }))
                .ok()?;
            // A candle that opened and closed at one price has no body:
            // mark it with a bar as wide as a body.
            let half = step * 0.35;
            price
                .draw_series(fresh.iter().filter(|c| c.open == c.close).map(|c| {
                    let colour = UP.stroke_width((2.0 * ratio) as u32);
                    PathElement::new(
                        vec![(center(c) - half, c.close), (center(c) + half, c.close)],
                        colour,
                    )
                }))
                .ok()?;
        }
        Style::Line => {
            // The segment into the first fresh column is drawn whole.
            price
                .draw_series(LineSeries::new(
                    candles.iter().map(|c| (center(c), c.close)),
                    LINE.stroke_width((2.0 * ratio) as u32),
                ))
                .ok()?;
        }
    }
    for ((period, on), colour) in AVERAGES.iter().zip(s.averages).zip(AVERAGE_COLOURS) {
        if on {
            let points = range
                .clone()
                .filter_map(|i| Some((center(&all[i]), average(all, i, *period)?)));
            price
                .draw_series(LineSeries::new(
                    points,
                    colour.stroke_width((1.5 * ratio) as u32),
                ))
                .ok()?;
        }
    }
    volume
        .draw_series(fresh.iter().map(|c| {
            let colour = if c.close >= c.open { UP } else { DOWN };
            let half = step * 0.35;
            Rectangle::new(
                [(center(c) - half, 0.0), (center(c) + half, c.volume)],
                colour.mix(0.6).filled(),
            )
        }))
        .ok()?;
    root.present().ok()?;
    Some((
        (x_pixels.start, x_pixels.end),
        (y_pixels.start, y_pixels.end),
    ))
}
