//! The chart panel component: interval and style buttons, the canvas and the
//! crosshair tooltip. It renders once; the handle draws.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::handle::{ChartHandle, Style};
#[cfg(feature = "hydrate")]
use super::labels::time_label;
use crate::candles::Interval;

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
