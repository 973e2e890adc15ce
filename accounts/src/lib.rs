//! The accounts aggregate: who trades, what they hold, and how trades move it.
//!
//! This crate owns the exchange's money. A [`Ledger`] holds every account's
//! balances per asset (total and reserved; available is the difference),
//! the reservations behind open orders, the fees the exchange collected and
//! the deposits that brought money in. Like `orderbook` it is a pure core:
//! the `decide` methods read the state and return [`AccountEvent`]s (or a
//! typed [`AccountError`]); [`Ledger::apply`] is the only way the state
//! changes, so the ledger is always the fold of its events.
//!
//! Settlement is driven by the order books' events. [`Ledger::settle`] turns
//! one market event (a `TradeExecuted`, an `OrderAmended`, or the `OrderFilled` /
//! `OrderCancelled` that closes an order) into account events that carry the
//! market stream revision they came from; each account remembers the last
//! revision it settled per market, so replaying a market's log after a crash
//! settles every trade exactly once.
//!
//! # Events
//!
//! JSON objects with `schema_version` (now [`SCHEMA_VERSION`]) and `type`;
//! amounts are decimal strings, times microseconds since the Unix epoch.
//! `AccountOpened` goes to the registry stream; every other event goes to
//! the stream of the account it names.
//!
//! - `AccountOpened`: `account`, `username`, `password_hash` (PHC string), `at`.
//! - `FundsDeposited`: `account`, `asset`, `amount`, `source` (`faucet`), `at`.
//! - `FundsReserved`: `account`, `symbol`, `order_id`, `asset`, `amount`, `at`.
//! - `FundsReleased`: `account`, `symbol`, `order_id`, `asset`, `amount`,
//!   `reason` (`order_closed`, `order_not_placed`), `market_revision`, `at`.
//! - `TradeSettled`: `account`, `symbol`, `trade_id`, `order_id`, `role`
//!   (`maker`/`taker`), `side`, `price`, `quantity`, `paid_asset`, `paid`,
//!   `received_asset`, `received` (before the fee), `fee` (in the received
//!   asset), `market_revision`, `at`.
//! - `ReservationChanged` (version 2): `account`, `symbol`, `order_id`,
//!   `asset`, `change` (signed: added to the order's reservation),
//!   `market_revision` (the `OrderAmended` that let it shrink), `at`. An
//!   amendment that needs more is reserved for before it goes to the book;
//!   settling its `OrderAmended` gives back what the order holds beyond
//!   its new terms.
//! - `OrderRefused` (version 2): `account`, `symbol`, `side`, `order_type`,
//!   `price`, `quantity`, `quote_amount` (as asked), `reason` (the words
//!   the trader was answered with), `at`. Moves no money; it keeps a
//!   refused order in the trader's history.
//! - `SessionStarted` / `SessionEnded`: `account`, `token_hash`, `at`.

mod config;
mod decide;
mod event;
pub mod invariants;
mod ledger;

pub use config::{Faucet, FaucetGrant, Fees, Role};
pub use decide::{
    AccountError, amend_cost, open_cost, order_cost, validate_password, validate_username,
};
pub use event::{
    AccountEvent, AccountEventDecodeError, DepositSource, ReleaseReason, SCHEMA_VERSION,
    TradeSettled,
};
pub use ledger::{Account, Balance, Ledger, Reservation};
