//! The price chart: candles (or a line) with volume bars, drawn by plotters
//! from WASM on a `<canvas>`.
//!
//! The component renders once. The chart's data and drawing state live
//! outside the reactive tree in a [`ChartHandle`]: the live feed pushes each
//! trade into it, and the handle draws just the candle that changed onto the
//! existing picture. Only when the axes must change (a candle outside the
//! drawn time or price range, another interval or style, a new market, a
//! resize) is the whole canvas redrawn, at most once per animation frame
//! however many trades arrive. The canvas is sized in device pixels, so it
//! is sharp on high-DPI screens. A crosshair and tooltip follow the pointer
//! as plain HTML over the canvas, without touching the picture.

use leptos::html::Canvas;
use leptos::prelude::*;

use crate::api::TradeView;
use crate::candles::{Candle, Change, Interval, Series};

/// Candles shown across the chart.
pub const VISIBLE: usize = 90;
/// Empty candle slots kept to the right, so new candles usually fit.
pub const HEADROOM: usize = 8;

/// How candles are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Candles,
    Line,
}

impl Style {
    /// The columns an append paints afresh: the last candle's, and for a
    /// line also the one before, which its last segment crosses.
    fn fresh_columns(self) -> usize {
        match self {
            Style::Candles => 1,
            Style::Line => 2,
        }
    }

    /// The candles an append needs: the fresh ones and, for a line, the
    /// point its first fresh segment starts from.
    fn tail(self) -> usize {
        self.fresh_columns() + usize::from(self == Style::Line)
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
}

impl Axes {
    /// Axes that hold the given candles with some room to grow.
    pub fn around(candles: &[Candle], interval: Interval) -> Option<Axes> {
        let first = candles.first()?;
        let last = candles.last()?;
        let step = interval.millis() as f64;
        let x0 = first.start_ms as f64 - step;
        let x1 = last.start_ms as f64 + step * (HEADROOM as f64 + 1.0);
        let low = candles.iter().map(|c| c.low).fold(f64::MAX, f64::min);
        let high = candles.iter().map(|c| c.high).fold(f64::MIN, f64::max);
        let pad = ((high - low) * 0.08).max(high.abs() * 0.001).max(1e-9);
        let volume = candles.iter().map(|c| c.volume).fold(0.0, f64::max);
        Some(Axes {
            x: (x0, x1),
            y: (low - pad, high + pad),
            volume_max: (volume * 1.15).max(1e-12),
            plot_x: (0, 0),
        })
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

/// Everything the chart knows, kept out of the reactive graph.
pub struct ChartState {
    pub series: Vec<Series>,
    pub interval: Interval,
    pub style: Style,
    pub axes: Option<Axes>,
    frame_pending: bool,
    #[cfg(feature = "hydrate")]
    canvas: Option<web_sys::HtmlCanvasElement>,
}

impl ChartState {
    fn visible(&self) -> &[Candle] {
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
pub struct ChartHandle(StoredValue<ChartState, Storage>);

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

/// Time labels: `HH:MM` within a day, `MM-DD` for daily candles (UTC).
pub fn time_label(ms: f64, interval: Interval) -> String {
    let ms = ms.max(0.0) as u64;
    if interval == Interval::D1 {
        let (_, m, d) = civil_date(ms / 86_400_000);
        format!("{m:02}-{d:02}")
    } else {
        let minutes = ms / 60_000 % 1440;
        format!("{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The chart panel: interval and style buttons, the canvas and the
/// crosshair tooltip.
#[component]
pub fn PriceChart(chart: ChartHandle) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let interval = RwSignal::new(Interval::M1);
    let style = RwSignal::new(Style::Candles);
    let tooltip = RwSignal::new(None::<(f64, f64, String)>);
    Effect::new(move |_| {
        let (i, s) = (interval.get(), style.get());
        #[cfg(feature = "hydrate")]
        if let Some(el) = canvas.get() {
            chart.attach(el);
        }
        chart.show(i, s);
    });
    let on_move = move |ev: leptos::ev::PointerEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let Some(el) = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            else {
                return;
            };
            let rect = el.get_bounding_client_rect();
            let (x, y) = (
                ev.client_x() as f64 - rect.left(),
                ev.client_y() as f64 - rect.top(),
            );
            let found = chart.candle_at(x / rect.width(), chart.canvas_width());
            tooltip.set(found.map(|(c, i)| {
                let text = format!(
                    "{}  O {}  H {}  L {}  C {}  V {}",
                    time_label(c.start_ms as f64, i),
                    c.open,
                    c.high,
                    c.low,
                    c.close,
                    (c.volume * 1e8).round() / 1e8
                );
                (x, y, text)
            }));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let button = move |label: &'static str, active: Signal<bool>, pick: Callback<()>| {
        view! {
            <button type="button" class="secondary" aria-pressed=move || active.get().to_string()
                on:click=move |_| pick.run(())>{label}</button>
        }
    };
    view! {
        <div class="chart-controls" role="toolbar" aria-label="Chart options">
            {Interval::ALL
                .into_iter()
                .map(|i| button(i.label(), Signal::derive(move || interval.get() == i), Callback::new(move |_| interval.set(i))))
                .collect_view()}
            <span class="spacer"></span>
            {button("Candles", Signal::derive(move || style.get() == Style::Candles), Callback::new(move |_| style.set(Style::Candles)))}
            {button("Line", Signal::derive(move || style.get() == Style::Line), Callback::new(move |_| style.set(Style::Line)))}
        </div>
        <div class="chart-frame">
            <canvas
                class="chart"
                data-testid="chart"
                node_ref=canvas
                width="960"
                height="480"
                aria-label="Price chart"
                on:pointermove=on_move
                on:pointerleave=move |_| tooltip.set(None)
            ></canvas>
            {move || tooltip.get().map(|(x, y, text)| view! {
                <div class="crosshair-v" style=format!("left:{x}px")></div>
                <div class="crosshair-h" style=format!("top:{y}px")></div>
                <div class="chart-tooltip" role="status" data-testid="chart-tooltip">{text}</div>
            })}
        </div>
    }
    .into_any()
}

#[cfg(feature = "hydrate")]
mod draw {
    use super::*;
    use plotters::coord::ranged1d::{BoldPoints, Ranged};
    use plotters::prelude::*;
    use plotters_canvas::CanvasBackend;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;

    const BG: RGBColor = RGBColor(0x11, 0x15, 0x1c);
    const GRID: RGBColor = RGBColor(0x22, 0x29, 0x34);
    const TEXT: RGBColor = RGBColor(0x9a, 0xa4, 0xb2);
    const UP: RGBColor = RGBColor(0x3d, 0xd6, 0x8c);
    const DOWN: RGBColor = RGBColor(0xf0, 0x61, 0x6d);
    const LINE: RGBColor = RGBColor(0x4c, 0x8d, 0xff);

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
        /// Gives the handle its canvas, sized in device pixels.
        pub fn attach(&self, canvas: web_sys::HtmlCanvasElement) {
            let ratio = dpr();
            let css_width = f64::from(canvas.client_width().max(320));
            let css_height = (css_width * 0.5).clamp(240.0, 520.0);
            canvas.set_width((css_width * ratio) as u32);
            canvas.set_height((css_height * ratio) as u32);
            self.0.update_value(|s| s.canvas = Some(canvas));
        }

        pub fn canvas_width(&self) -> f64 {
            self.0
                .with_value(|s| s.canvas.as_ref().map_or(1.0, |c| f64::from(c.width())))
        }

        /// Asks for one full redraw at the next animation frame.
        pub(super) fn schedule(&self) {
            let already = self
                .0
                .try_update_value(|s| std::mem::replace(&mut s.frame_pending, true));
            if already != Some(false) {
                return;
            }
            let handle = *self;
            let callback = Closure::once_into_js(move || {
                handle.0.update_value(|s| s.frame_pending = false);
                handle.redraw();
            });
            if let Some(w) = web_sys::window() {
                let _ = w.request_animation_frame(callback.unchecked_ref());
            }
        }

        /// Draws everything, choosing new axes.
        pub fn redraw(&self) {
            self.0.update_value(|s| {
                let Some(canvas) = s.canvas.clone() else {
                    return;
                };
                let candles = s.visible().to_vec();
                s.axes = Axes::around(&candles, s.interval);
                if let Some(plot_x) = paint(&canvas, s, &candles, true)
                    && let Some(a) = s.axes.as_mut()
                {
                    a.plot_x = plot_x;
                }
            });
        }

        /// Draws the last candles onto the existing picture (see `paint`).
        pub(super) fn draw_tail(&self, tail: &[Candle]) {
            self.0.update_value(|s| {
                let Some(canvas) = s.canvas.clone() else {
                    return;
                };
                paint(&canvas, s, tail, false);
            });
        }
    }

    /// Paints `candles` with the state's axes: everything (background, mesh,
    /// labels) when `full`. Otherwise `candles` is the tail of the series:
    /// the columns of the last candle (and, for a line, of the one before,
    /// which its last segment crosses) are cleared, their grid lines put
    /// back, and what lies in them drawn again, so nothing is painted twice.
    /// Returns the price plot's horizontal pixel range.
    pub(super) fn paint(
        canvas: &web_sys::HtmlCanvasElement,
        s: &ChartState,
        candles: &[Candle],
        full: bool,
    ) -> Option<(i32, i32)> {
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
        let x_pixels = price.plotting_area().get_pixel_range().0;
        let px_per_ms = f64::from(x_pixels.end - x_pixels.start) / (axes.x.1 - axes.x.0);
        let body = ((step * px_per_ms * 0.7) as u32).max(1);
        let center = |c: &Candle| c.start_ms as f64 + step / 2.0;
        // The candles whose columns are painted afresh.
        let fresh = if full {
            candles
        } else {
            &candles[candles.len().saturating_sub(s.style.fresh_columns())..]
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
        Some((x_pixels.start, x_pixels.end))
    }
}

/// Timing the chart in a real browser (`scripts/bench-chart.sh`): full
/// redraws and live appends over a long history, measured with the page's
/// own clock around the drawing calls.
#[cfg(feature = "bench-chart")]
pub mod bench {
    use super::*;
    use crate::candles::Series;

    /// Milliseconds per call, what each push did, and how far the picture
    /// built by appends is from a full redraw of the same data.
    #[derive(Default)]
    pub struct Timings {
        pub redraw_ms: Vec<f64>,
        pub append_ms: Vec<f64>,
        pub scheduled: u32,
        /// Canvas bytes (RGBA channels) that painting everything again on
        /// the same axes after the appends changed by more than a little
        /// antialiasing.
        pub differing: u32,
    }

    fn context(canvas: &web_sys::HtmlCanvasElement) -> Option<web_sys::CanvasRenderingContext2d> {
        use wasm_bindgen::JsCast;
        canvas.get_context("2d").ok()??.dyn_into().ok()
    }

    /// Every pixel of the canvas (reading them also makes the browser
    /// finish drawing, which `flush` relies on).
    fn pixels(canvas: &web_sys::HtmlCanvasElement, w: u32, h: u32) -> Vec<u8> {
        context(canvas)
            .and_then(|c| c.get_image_data(0.0, 0.0, f64::from(w), f64::from(h)).ok())
            .map(|d| d.data().0)
            .unwrap_or_default()
    }

    fn now() -> f64 {
        web_sys::window()
            .and_then(|w| w.performance())
            .map_or(0.0, |p| p.now())
    }

    fn trade(at_ms: u64, price: f64, quantity: f64) -> TradeView {
        TradeView {
            trade_id: 0,
            price: price.to_string(),
            quantity: quantity.to_string(),
            taker_side: "buy".into(),
            at_ms,
        }
    }

    /// A chart holding `points` one-minute candles (and the coarser
    /// intervals they make), drawn on `canvas`: `redraws` full redraws,
    /// then `appends` trades that fit the axes (so each is drawn onto the
    /// picture) and are timed one by one. With `flush`, each timing ends
    /// when the pixels are on the canvas, not when the calls returned.
    pub fn run(
        canvas: web_sys::HtmlCanvasElement,
        points: usize,
        redraws: usize,
        appends: usize,
        style: Style,
        flush: bool,
    ) -> Timings {
        let start = 1_700_000_000_000 / 60_000 * 60_000;
        let mut series: Vec<Series> = Interval::ALL
            .iter()
            .map(|&i| Series::new(i, points))
            .collect();
        for n in 0..points as u64 {
            // A slow wave around 30,000 with a wide range, one trade a minute.
            let price = 30_000.0 + 500.0 * ((n as f64) / 40.0).sin();
            for s in &mut series {
                s.add(start + n * 60_000, price, 1.0);
            }
        }
        let chart = ChartHandle::new(series);
        chart.attach(canvas.clone());
        let (w, h) = (canvas.width(), canvas.height());
        let finish = || {
            if flush {
                pixels(&canvas, 1, 1);
            }
        };
        // Set directly: `show` would leave a redraw pending for a frame
        // that never comes while this loop runs.
        chart.0.update_value(|s| s.style = style);
        let mut t = Timings::default();
        for _ in 0..redraws {
            let began = now();
            chart.redraw();
            finish();
            t.redraw_ms.push(now() - began);
        }
        let last = start + (points as u64 - 1) * 60_000;
        for n in 0..appends as u64 {
            // Inside the price range; a new minute every 200 trades, within
            // the empty slots the axes keep to the right.
            let at = last + (n / 200) * 60_000 + n % 200;
            let price = 30_000.0 + 100.0 * ((n as f64) / 7.0).sin();
            let began = now();
            let drawn = chart.push(&trade(at, price, 0.0001));
            finish();
            let took = now() - began;
            match drawn {
                Drawn::Appended => t.append_ms.push(took),
                _ => t.scheduled += 1,
            }
        }
        // Paint everything again on the same axes (a `redraw` would choose
        // new ones) and compare.
        let appended = pixels(&canvas, w, h);
        chart.0.update_value(|s| {
            let Some(axes) = s.axes else { return };
            let candles: Vec<Candle> = s.series[0]
                .candles
                .iter()
                .filter(|c| c.start_ms as f64 > axes.x.0)
                .copied()
                .collect();
            super::draw::paint(&canvas, s, &candles, true);
        });
        let redrawn = pixels(&canvas, w, h);
        t.differing = appended
            .iter()
            .zip(&redrawn)
            .filter(|(a, b)| a.abs_diff(**b) > 48)
            .count() as u32;
        t
    }
}
