//! Where a component's view type ends on the server.
//!
//! A Leptos view's type is the whole tree below it, so a page's type nests
//! every component in it. On the server, where views only render HTML,
//! erasing each large component's view keeps those types small (without
//! it the debug server binary was 0.9 GB, nearly all symbol names, and the
//! test build's `target/` twice as big). In the browser the view keeps its
//! type: erasing it there costs the bundle a copy of its asynchronous
//! hydration. Both render the same HTML, so hydration is unaffected.

use leptos::prelude::*;

/// The view, erased on the server.
#[cfg(not(feature = "hydrate"))]
pub fn boundary(view: impl IntoView + 'static) -> AnyView {
    view.into_any()
}

/// The view as it is, in the browser.
#[cfg(feature = "hydrate")]
pub fn boundary(view: impl IntoView + 'static) -> impl IntoView {
    view
}
