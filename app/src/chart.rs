//! The live chart: a `<canvas>` that plotters draws on from WASM.
//!
//! The component renders the canvas once; the browser side keeps the points
//! in a buffer outside the reactive tree and paints them straight onto the
//! canvas, so a new point never re-renders the component.
//!
//! Until market data flows, the chart plots the live link itself: how long
//! each server clock tick took from the server's clock to this page.

use leptos::html::Canvas;
use leptos::prelude::*;

use crate::live::ClockFeed;

/// Canvas size in CSS pixels.
pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 320;

/// How many points the chart keeps.
const CAPACITY: usize = 240;

/// The live chart panel.
#[component]
pub fn LiveChart(clock: ClockFeed) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    #[cfg(feature = "hydrate")]
    {
        let points = StoredValue::new(draw::Points::new(CAPACITY));
        Effect::new(move |_| {
            let Some((tick, received_ms)) = clock.latest.get() else {
                return;
            };
            let Some(el) = canvas.get() else { return };
            points.update_value(|p| p.push(tick.unix_ms, received_ms));
            points.with_value(|p| draw::paint(&el, p));
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (clock, CAPACITY);

    view! {
        <canvas
            class="chart"
            data-testid="chart"
            node_ref=canvas
            width=WIDTH
            height=HEIGHT
            aria-label="Live chart"
        ></canvas>
    }
}

#[cfg(feature = "hydrate")]
mod draw {
    use plotters::prelude::*;
    use plotters_canvas::CanvasBackend;
    use std::collections::VecDeque;
    use web_sys::HtmlCanvasElement;

    /// A bounded buffer of (seconds since first tick, delay ms) points.
    pub struct Points {
        first_ms: Option<u64>,
        data: VecDeque<(f64, f64)>,
        capacity: usize,
    }

    impl Points {
        pub fn new(capacity: usize) -> Self {
            Self {
                first_ms: None,
                data: VecDeque::with_capacity(capacity),
                capacity,
            }
        }

        pub fn push(&mut self, server_ms: u64, received_ms: f64) {
            let first = *self.first_ms.get_or_insert(server_ms);
            let t = server_ms.saturating_sub(first) as f64 / 1000.0;
            let delay = (received_ms - server_ms as f64).max(0.0);
            if self.data.len() == self.capacity {
                self.data.pop_front();
            }
            self.data.push_back((t, delay));
        }
    }

    const BG: RGBColor = RGBColor(0x11, 0x15, 0x1c);
    const GRID: RGBColor = RGBColor(0x2a, 0x31, 0x3c);
    const TEXT: RGBColor = RGBColor(0x9a, 0xa4, 0xb2);
    const LINE: RGBColor = RGBColor(0x3d, 0xd6, 0x8c);

    /// Paints the whole chart. Drawing errors (a detached canvas) are not the
    /// user's problem and leave the previous frame in place.
    pub fn paint(canvas: &HtmlCanvasElement, points: &Points) {
        let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
            return;
        };
        let root = backend.into_drawing_area();
        let _ = draw(&root, points);
        let _ = root.present();
    }

    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, plotters::coord::Shift>,
        points: &Points,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&BG)?;
        let (x0, x1) = match (points.data.front(), points.data.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
            (Some(a), _) => (a.0, a.0 + 1.0),
            _ => (0.0, 1.0),
        };
        let y1 = points.data.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, 0.0..y1)?;
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(BG)
            .axis_style(GRID)
            .label_style(("sans-serif", 12).into_font().color(&TEXT))
            .x_desc("seconds")
            .y_desc("link delay (ms)")
            .draw()?;
        chart.draw_series(LineSeries::new(
            points.data.iter().copied(),
            LINE.stroke_width(2),
        ))?;
        Ok(())
    }
}
