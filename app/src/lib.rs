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

/// The server's allocator, here rather than in the binary so that the
/// tests and the in-process benchmarks run the server's code on it too.
/// Every request allocates and frees many small buffers (HTTP, JSON, gRPC
/// frames) on both runtime threads: with glibc's allocator that was a
/// quarter of the server's CPU at 128 orders in flight. jemalloc doubles
/// the orders a second and holds no more memory on a long history;
/// mimalloc, also tried, was as fast but held a fifth more and started
/// slower (docs/benchmarks.md, "Order path").
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(test, feature = "ssr"))]
mod tests;

pub use shell::{App, shell};
