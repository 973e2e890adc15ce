//! The chart panel component: interval, style and average buttons, zoom
//! and pan (buttons, wheel, drag, pinch, keys), the canvas with the last
//! price and crosshair over it, and the `candles_before` server function
//! that older candles load from. It renders once; the handle draws.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::axes::View;
use super::gestures::{self, Gesture, Pointers};
use super::handle::{AVERAGES, ChartHandle, Style};
use crate::api::CandleHistory;
use crate::boundary::boundary;
use crate::candles::Interval;
use crate::error::UserError;
use crate::time_format::time_label;

/// Candles one history request asks for.
const HISTORY_PAGE: usize = 500;
/// How much one zoom step (a button, a key, a wheel notch) changes the span.
const ZOOM_STEP: f64 = 1.25;
/// How far one pan step (a button, a key) moves, as a share of the span.
const PAN_STEP: f64 = 0.2;

/// Up to `limit` candles of `interval` (its label: 1m, 5m, 15m, 1h, 4h, 1d,
/// 1w) that start before `before_ms`, newest last, from the market data
/// projection, which holds every trade since the market began.
#[server(endpoint = "candles_before")]
pub async fn candles_before(
    symbol: String,
    interval: String,
    before_ms: u64,
    limit: usize,
) -> Result<CandleHistory, UserError> {
    use crate::server::HISTORY_LIMIT;
    use crate::server::request_limits::CANDLES_WEIGHT;
    crate::site::context::spend_weight(CANDLES_WEIGHT).await?;
    let exchange = crate::site::context::exchange()?;
    let Some(interval) = Interval::from_label(&interval) else {
        let known: Vec<_> = Interval::ALL.iter().map(|i| i.label()).collect();
        return Err(UserError::new(format!(
            "there is no interval {interval:?}; use one of {}",
            known.join(", ")
        )));
    };
    if limit == 0 || limit > HISTORY_LIMIT {
        return Err(UserError::new(format!(
            "ask for 1 to {HISTORY_LIMIT} candles at a time, not {limit}"
        )));
    }
    exchange
        .candles_before(&symbol, interval, before_ms, limit)
        .ok_or_else(|| crate::server::ExchangeError::UnknownMarket(symbol).into())
}

/// The chart panel: see the module docs. `symbol` is the market shown,
/// which older candles are fetched for; `testid` names the canvas for
/// tests (the live chart's is `chart`).
#[component]
pub fn PriceChart(
    chart: ChartHandle,
    symbol: Signal<String>,
    #[prop(default = "chart")] testid: &'static str,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let interval = RwSignal::new(Interval::M1);
    let style = RwSignal::new(Style::Candles);
    let averages = RwSignal::new([false; 3]);
    let tooltip = RwSignal::new(None::<(f64, f64, String)>);
    // Bumped after every change of view, to look for older candles to load.
    let viewed = RwSignal::new(0u64);
    Effect::new(move |_| {
        let (i, s, a) = (interval.get(), style.get(), averages.get());
        #[cfg(feature = "hydrate")]
        if let Some(el) = canvas.get() {
            chart.attach(el);
        }
        chart.show(i, s, a);
        viewed.update(|n| *n += 1);
    });
    // A new window size is a new canvas size: fit it and draw again.
    #[cfg(feature = "hydrate")]
    {
        let resized = window_event_listener(leptos::ev::resize, move |_| chart.refit());
        on_cleanup(move || resized.remove());
    }
    // Fetches older candles while the view reaches past the oldest loaded,
    // one request at a time; a reply for another market or a chart that
    // moved on is dropped.
    let fetching = StoredValue::new(false);
    Effect::new(move |_| {
        viewed.get();
        if fetching.get_value() {
            return;
        }
        let Some((wanted, before_ms)) = chart.wants_older() else {
            return;
        };
        let market = symbol.get_untracked();
        fetching.set_value(true);
        leptos::task::spawn_local(async move {
            let reply = candles_before(
                market.clone(),
                wanted.label().into(),
                before_ms,
                HISTORY_PAGE,
            )
            .await;
            fetching.set_value(false);
            if let Ok(history) = reply
                && symbol.get_untracked() == market
            {
                chart.prepend(wanted, before_ms, history);
                // The view may reach further back still.
                viewed.update(|n| *n += 1);
            }
        });
    });
    let zoom = move |factor: f64, anchor: f64| {
        chart.change_view(|v, candles, i| v.zoom(factor, anchor, candles, i));
        viewed.update(|n| *n += 1);
    };
    let pan = move |share: f64| {
        chart.change_view(|v, candles, i| v.pan(share * v.span as f64, candles, i));
        viewed.update(|n| *n += 1);
    };
    let live = move || {
        // The latest candle at the zoom a chart opens with.
        chart.change_view(|v, _, _| *v = View::default());
        viewed.update(|n| *n += 1);
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        match ev.key().as_str() {
            "ArrowLeft" => pan(-PAN_STEP),
            "ArrowRight" => pan(PAN_STEP),
            "+" | "=" | "ArrowUp" => zoom(1.0 / ZOOM_STEP, 1.0),
            "-" | "_" | "ArrowDown" => zoom(ZOOM_STEP, 1.0),
            "End" => live(),
            _ => return,
        }
        ev.prevent_default();
    };
    let pointers = Pointers::default();
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        let delta = ev.delta_y();
        if delta == 0.0 {
            return;
        }
        let factor = if delta > 0.0 {
            ZOOM_STEP
        } else {
            1.0 / ZOOM_STEP
        };
        zoom(factor, gestures::anchor(chart, &ev));
    };
    let on_down = move |ev: leptos::ev::PointerEvent| pointers.down(&ev);
    let on_up = move |ev: leptos::ev::PointerEvent| pointers.up(&ev);
    let on_move = move |ev: leptos::ev::PointerEvent| {
        match pointers.moved(&ev) {
            Gesture::Drag(share) => pan(-share),
            Gesture::Pinch(ratio, anchor) => zoom(ratio, anchor),
            Gesture::Hover => {}
        }
        {
            let (x, y, fraction) = gestures::at(&ev);
            let found = chart.candle_at(fraction, chart.canvas_width());
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
    };
    let button = move |label: &'static str,
                       name: String,
                       active: Signal<bool>,
                       pick: Callback<()>| {
        view! {
            <button type="button" class="secondary" aria-label=name aria-pressed=move || active.get().to_string()
                on:click=move |_| pick.run(())>{label}</button>
        }
    };
    let action = move |label: &'static str, name: &'static str, run: Callback<()>| {
        view! {
            <button type="button" class="secondary" aria-label=name title=name
                on:click=move |_| run.run(())>{label}</button>
        }
    };
    let overlay = chart.overlay;
    let last = move || overlay.get().last;
    boundary(view! {
        <div class="chart-controls" role="toolbar" aria-label="Chart options">
            <span class="group" role="group" aria-label="Interval">
                {Interval::ALL
                    .into_iter()
                    .map(|i| button(i.label(), format!("{} candles", i.label()), Signal::derive(move || interval.get() == i), Callback::new(move |_| interval.set(i))))
                    .collect_view()}
            </span>
            <span class="group" role="group" aria-label="Style">
                {button("Candles", "Candles".into(), Signal::derive(move || style.get() == Style::Candles), Callback::new(move |_| style.set(Style::Candles)))}
                {button("Line", "Line".into(), Signal::derive(move || style.get() == Style::Line), Callback::new(move |_| style.set(Style::Line)))}
            </span>
            <span class="group" role="group" aria-label="Moving averages">
                {AVERAGES.into_iter().enumerate().map(|(n, period)| {
                    button(
                        ["MA 7", "MA 25", "MA 99"][n],
                        format!("Moving average of {period}"),
                        Signal::derive(move || averages.get()[n]),
                        Callback::new(move |_| averages.update(|a| a[n] = !a[n])),
                    )
                }).collect_view()}
            </span>
            <span class="group" role="group" aria-label="Zoom and pan">
                {action("−", "Zoom out", Callback::new(move |_| zoom(ZOOM_STEP, 1.0)))}
                {action("+", "Zoom in", Callback::new(move |_| zoom(1.0 / ZOOM_STEP, 1.0)))}
                {action("◀", "Earlier", Callback::new(move |_| pan(-PAN_STEP)))}
                {action("▶", "Later", Callback::new(move |_| pan(PAN_STEP)))}
                {action("Latest", "Back to the latest candle", Callback::new(move |_| live()))}
            </span>
        </div>
        <div class="chart-frame"
            data-first-shown=move || overlay.get().first_shown_ms.map(|t| t.to_string())
            data-loaded=move || overlay.get().loaded.to_string()>
            <canvas
                class="chart"
                data-testid=testid
                node_ref=canvas
                width="960"
                height="480"
                tabindex="0"
                role="img"
                aria-label="Price chart: arrow keys pan, plus and minus zoom, End returns to the latest"
                on:keydown=on_key
                on:wheel=on_wheel
                on:pointerdown=on_down
                on:pointerup=on_up
                on:pointercancel=on_up
                on:pointermove=on_move
                on:pointerleave=move |ev| { on_up(ev); tooltip.set(None) }
            ></canvas>
            {move || last().and_then(|(price, up, at)| at.map(|at| {
                let class = if up { "last-price buy" } else { "last-price sell" };
                view! {
                    <div class=class data-testid="last-price" style=format!("top:{:.3}%", at * 100.0)>
                        <span>{price}</span>
                    </div>
                }
            }))}
            {move || tooltip.get().map(|(x, y, text)| view! {
                <div class="crosshair-v" style=format!("left:{x}px")></div>
                <div class="crosshair-h" style=format!("top:{y}px")></div>
                <div class="chart-tooltip" role="status" data-testid="chart-tooltip">{text}</div>
            })}
        </div>
    })
}
