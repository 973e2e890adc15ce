//! Reading the pointer over the chart: where it is across the canvas, a
//! drag of one pointer (pan) and a pinch of two (zoom).

use leptos::prelude::*;

use super::handle::ChartHandle;

/// What a pointer's move means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gesture {
    /// One pointer held down moved by this share of the canvas's width
    /// (positive: to the right, so the view goes back in time).
    Drag(f64),
    /// Two pointers moved: the span changes by this factor (below 1 when
    /// they moved apart, showing less time) around this point across the
    /// canvas, 0 to 1.
    Pinch(f64, f64),
    /// No pointer held down: the crosshair just follows.
    Hover,
}

/// The pointers held down on the canvas: id and position in CSS pixels.
#[derive(Clone, Copy)]
pub struct Pointers {
    held: StoredValue<Vec<(i32, f64, f64)>>,
}

/// The pointer's position inside the event's element in CSS pixels, and
/// across its width as a share. (Events only happen in the browser.)
pub fn at(ev: &leptos::ev::MouseEvent) -> (f64, f64, f64) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        if let Some(el) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        {
            let rect = el.get_bounding_client_rect();
            let x = f64::from(ev.client_x()) - rect.left();
            let y = f64::from(ev.client_y()) - rect.top();
            return (
                x,
                y,
                if rect.width() > 0.0 {
                    x / rect.width()
                } else {
                    1.0
                },
            );
        }
    }
    let _ = ev;
    (0.0, 0.0, 1.0)
}

/// Where under the pointer a zoom is anchored, across the plot (0 to 1).
pub fn anchor(chart: ChartHandle, ev: &leptos::ev::MouseEvent) -> f64 {
    chart.across_plot(at(ev).2, chart.canvas_width())
}

impl Default for Pointers {
    fn default() -> Pointers {
        Pointers {
            held: StoredValue::new(Vec::new()),
        }
    }
}

impl Pointers {
    pub fn down(&self, ev: &leptos::ev::PointerEvent) {
        use leptos::wasm_bindgen::JsCast;
        if let Some(el) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
        {
            let _ = el.set_pointer_capture(ev.pointer_id());
        }
        let (x, y, _) = at(ev);
        self.held.update_value(|held| {
            held.retain(|p| p.0 != ev.pointer_id());
            if held.len() < 2 {
                held.push((ev.pointer_id(), x, y));
            }
        });
    }

    pub fn up(&self, ev: &leptos::ev::PointerEvent) {
        self.held
            .update_value(|held| held.retain(|p| p.0 != ev.pointer_id()));
    }

    /// Records a move and says what it means.
    pub fn moved(&self, ev: &leptos::ev::PointerEvent) -> Gesture {
        let (x, y, fraction) = at(ev);
        let width = if fraction > 0.0 { x / fraction } else { 0.0 };
        let id = ev.pointer_id();
        self.held
            .try_update_value(|held| {
                let before = held.clone();
                let mine = held.iter_mut().find(|p| p.0 == id)?;
                let old_x = mine.1;
                *mine = (id, x, y);
                match (&before[..], &held[..]) {
                    ([_], _) if width > 0.0 => Some(Gesture::Drag((x - old_x) / width)),
                    ([a, b], [c, d]) => {
                        let apart =
                            |p: &(i32, f64, f64), q: &(i32, f64, f64)| (p.1 - q.1).hypot(p.2 - q.2);
                        let (was, now) = (apart(a, b), apart(c, d));
                        let middle = (c.1 + d.1) / 2.0;
                        (was > 0.0 && now > 0.0 && width > 0.0)
                            .then(|| Gesture::Pinch(was / now, (middle / width).clamp(0.0, 1.0)))
                    }
                    _ => None,
                }
            })
            .flatten()
            .unwrap_or(Gesture::Hover)
    }
}
