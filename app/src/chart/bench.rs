//! Timing the chart in a real browser (`scripts/bench-chart.sh`): full
//! redraws, redraws after zooming and panning, and live appends over a
//! long history, measured with the page's own clock around the drawing
//! calls.

use leptos::prelude::*;

use super::axes::View;
use super::handle::{ChartHandle, Drawn, Style};
use crate::api::TradeView;
use crate::candles::{Interval, Series};

/// Milliseconds per call, what each push did, and how far the picture
/// built by appends is from a full redraw of the same data.
#[derive(Default)]
pub struct Timings {
    pub redraw_ms: Vec<f64>,
    /// Full redraws after a zoom or pan, spans of 100 to 1,000 candles,
    /// with the three moving averages drawn.
    pub zoomed_ms: Vec<f64>,
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
/// intervals they make), drawn on `canvas`: `redraws` full redraws, as
/// many after a zoom or pan, then `appends` trades that fit the axes (so each is drawn onto the
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
    chart.state.update_value(|s| s.style = style);
    let mut t = Timings::default();
    for _ in 0..redraws {
        let began = now();
        chart.redraw();
        finish();
        t.redraw_ms.push(now() - began);
    }
    // Zoom and pan over the whole history, as a trader scrolling back.
    let spans = [100usize, 250, 500, 1000];
    for n in 0..redraws {
        let back = (n * 7919 % points.max(1)) as f64;
        chart.state.update_value(|s| {
            s.averages = [true; 3];
            s.view = View {
                span: spans[n % spans.len()],
                end_ms: Some((start + points as u64 * 60_000) as f64 - back * 60_000.0),
            };
        });
        let began = now();
        chart.redraw();
        finish();
        t.zoomed_ms.push(now() - began);
    }
    chart.state.update_value(|s| {
        s.averages = [false; 3];
        s.view = View::default();
    });
    chart.redraw();
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
    chart.state.update_value(|s| {
        let Some(axes) = s.axes else { return };
        let all = s.candles();
        let from = all.partition_point(|c| (c.start_ms as f64) < axes.x.0);
        super::draw::paint(&canvas, s, from..all.len(), true);
    });
    let redrawn = pixels(&canvas, w, h);
    t.differing = appended
        .iter()
        .zip(&redrawn)
        .filter(|(a, b)| a.abs_diff(**b) > 48)
        .count() as u32;
    t
}
