//! The exchange behind the pages: the accounts task, one task per market,
//! the market data, the live tail and the feed of each page, and the event store they all
//! write to and read from (through `streams`). Nothing here imports a page
//! or the site that serves them; they build on this.

mod accounts_task;
pub mod audit;
pub mod book_diffs;
mod book_history;
pub(crate) mod book_snapshots;
pub(crate) mod clock;
pub(crate) mod credentials;
pub mod depth_updates;
pub mod exact_candles;
mod exchange;
mod exchange_error;
pub mod feed;
pub mod feed_limits;
pub mod key_crypto;
pub mod leadership;
mod ledger_fold;
pub mod live_tail;
pub mod lock;
pub(crate) mod log_read;
pub(crate) mod login_limits;
pub(crate) mod market_data;
mod market_task;
pub mod order_history;
mod order_history_snapshot;
mod order_history_task;
mod order_list;
mod order_record;
pub mod orders;
pub mod request_limits;
mod settings;
pub mod simulator;
mod snapshot_writer;
mod start_snapshot_writer;
pub mod start_snapshots;
pub mod streams;
mod supervise;
pub(crate) mod views;
mod window;

pub use book_history::TradesFrom;
pub use exchange::account_reads::{AccountRead, OrderRef, ViewInputs};
pub use exchange::api_keys::{CreatedKey, KeyListing, KeyRefusal, NewKey, SignedRequest};
pub use exchange::market_reads::ReplayTo;
pub use exchange::{Connection, Exchange, MarketStats, StartError, Stats, StoreStats};
pub use exchange_error::ExchangeError;
pub use market_data::HISTORY_LIMIT;
pub use market_task::CommandOutcome;
pub use order_history::{OrderFilter, OrderRecord, OrderState};
pub use settings::{
    MAX_OPEN_ORDERS, MAX_STOP_ORDERS, SNAPSHOT_EVERY, START_SNAPSHOT_EVERY, SessionPolicy,
    Settings, SettingsError,
};
pub use views::depth_view;
