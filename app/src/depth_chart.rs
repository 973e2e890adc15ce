//! The depth chart: the book as two areas of cumulative size, bids
//! stepping up to the left of the middle and asks to the right, a second
//! view of what the order book table lists. It is SVG drawn from the depth
//! the feed sends, so it follows the book without touching the price
//! chart's canvas.

use leptos::prelude::*;

use crate::api::{DepthView, LevelView};
use crate::boundary::boundary;

/// The drawing's coordinate box (the SVG stretches it to the panel).
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 400.0;

/// The two areas as SVG paths, and what the axes show.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthCurve {
    pub bids: String,
    pub asks: String,
    /// The prices at the left edge, the middle and the right edge.
    pub prices: (f64, f64, f64),
    /// The cumulative size at the top of the drawing.
    pub top: f64,
}

fn read(levels: &[LevelView]) -> Vec<(f64, f64)> {
    levels
        .iter()
        .filter_map(|l| Some((l.price.parse().ok()?, l.cumulative.parse().ok()?)))
        .collect()
}

/// One side's area: from its best price at the base, up a step at each
/// level, out to `edge_x`, and back down.
fn area(
    levels: &[(f64, f64)],
    x: impl Fn(f64) -> f64,
    y: impl Fn(f64) -> f64,
    edge_x: f64,
) -> String {
    let Some(&(best, _)) = levels.first() else {
        return String::new();
    };
    let mut path = format!("M{:.1},{HEIGHT:.1}", x(best));
    for (i, &(_, total)) in levels.iter().enumerate() {
        path += &format!("V{:.1}", y(total));
        let next = levels.get(i + 1).map_or(edge_x, |&(p, _)| x(p));
        path += &format!("H{next:.1}");
    }
    path + &format!("V{HEIGHT:.1}Z")
}

/// The curve of a book's depth; `None` when both sides are empty.
pub fn curve(depth: &DepthView) -> Option<DepthCurve> {
    let (bids, asks) = (read(&depth.bids), read(&depth.asks));
    let middle = match (bids.first(), asks.first()) {
        (Some(b), Some(a)) => (b.0 + a.0) / 2.0,
        (Some(b), None) => b.0,
        (None, Some(a)) => a.0,
        (None, None) => return None,
    };
    let reach_bids = bids.last().map_or(0.0, |b| middle - b.0);
    let reach_asks = asks.last().map_or(0.0, |a| a.0 - middle);
    // A tenth more than the deepest level's distance, so its step shows.
    let half = reach_bids
        .max(reach_asks)
        .max(middle.abs() * 1e-4)
        .max(1e-9)
        * 1.1;
    let (low, high) = (middle - half, middle + half);
    let deepest = bids.iter().chain(&asks).map(|l| l.1).fold(0.0, f64::max);
    let top = if deepest > 0.0 { deepest * 1.1 } else { 1.0 };
    let x = |price: f64| (price - low) / (high - low) * WIDTH;
    let y = |total: f64| HEIGHT - total / top * HEIGHT;
    Some(DepthCurve {
        bids: area(&bids, x, y, 0.0),
        asks: area(&asks, x, y, WIDTH),
        prices: (low, middle, high),
        top,
    })
}

/// The depth chart of the depth given.
#[component]
pub fn DepthChart(depth: Signal<DepthView>) -> impl IntoView {
    let drawn = Memo::new(move |_| curve(&depth.get()));
    let label = |v: f64| format!("{}", (v * 100.0).round() / 100.0);
    boundary(view! {
        <div class="depth-chart" data-testid="depth-chart">
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img"
                aria-label="Depth chart: cumulative size of bids and asks by price">
                <path class="bids" d=move || drawn.get().map(|c| c.bids).unwrap_or_default() />
                <path class="asks" d=move || drawn.get().map(|c| c.asks).unwrap_or_default() />
            </svg>
            {move || match drawn.get() {
                None => view! { <p class="empty depth-empty">"No resting orders."</p> }.into_any(),
                Some(c) => view! {
                    <span class="depth-top">{label(c.top)}</span>
                    <span class="depth-low">{label(c.prices.0)}</span>
                    <span class="depth-middle">{label(c.prices.1)}</span>
                    <span class="depth-high">{label(c.prices.2)}</span>
                }.into_any(),
            }}
        </div>
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(price: &str, cumulative: &str) -> LevelView {
        LevelView {
            price: price.into(),
            quantity: String::new(),
            cumulative: cumulative.into(),
        }
    }

    #[test]
    fn bids_step_up_to_the_left_and_asks_to_the_right() {
        let depth = DepthView {
            bids: vec![level("99", "1"), level("98", "3")],
            asks: vec![level("101", "2"), level("104", "4")],
        };
        let c = curve(&depth).unwrap();
        // The middle is 100, the deepest level 4 away: 95.6 to 104.4.
        let (low, middle, high) = c.prices;
        assert!((low - 95.6).abs() < 1e-9 && middle == 100.0 && (high - 104.4).abs() < 1e-9);
        assert!((c.top - 4.4).abs() < 1e-9);
        // x: 1000 / 8.8 per unit of price; y: 400 at zero, 0 at 4.4.
        assert_eq!(c.bids, "M386.4,400.0V309.1H272.7V127.3H0.0V400.0Z");
        assert_eq!(c.asks, "M613.6,400.0V218.2H954.5V36.4H1000.0V400.0Z");
        assert_eq!(curve(&DepthView::default()), None);
        // One side alone is drawn around its best price.
        let asks_only = DepthView {
            bids: Vec::new(),
            asks: vec![level("101", "2")],
        };
        let c = curve(&asks_only).unwrap();
        assert_eq!(c.bids, "");
        assert_eq!(c.prices.1, 101.0);
    }
}
