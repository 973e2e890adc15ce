//! The exchange's web application: every page, the server functions behind
//! them and, with the `ssr` feature, the axum server that serves them.
//!
//! The same component tree renders on the server (feature `ssr`) and hydrates
//! in the browser (feature `hydrate`, entered through the `frontend` crate).
//! Server functions sit beside the components that call them; every type
//! that crosses the wire is in [`api`], the bottom module that pages and
//! server both build on. Code that only makes sense on one side is gated on
//! that side's feature.

// The terminal's view types nest deeper than the default limit allows.
#![recursion_limit = "256"]

pub mod account;
pub mod api;
pub mod book_grouping;
pub mod boundary;
pub mod candles;
pub mod chart;
pub mod codec;
pub mod depth_chart;
pub mod error;
pub mod history;
pub mod live_market;
pub mod shared_json;
pub mod shell;
pub mod terminal;
pub mod time_format;
pub mod time_machine;
pub mod trader_panel;

#[cfg(feature = "ssr")]
pub mod check;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod site;
#[cfg(feature = "ssr")]
pub mod store_flags;
#[cfg(all(test, feature = "ssr"))]
mod tests;

pub use shell::{App, shell};
