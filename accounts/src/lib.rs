//! The accounts aggregate: who trades, what they hold, and how trades move it.
//!
//! This crate owns the exchange's money. A [`Ledger`] holds every account's
//! balances per asset (total and reserved; available is the difference),
//! what each open order holds, the fees the exchange collected and the
//! deposits that brought money in. Like `orderbook` it is a pure core, and
//! the ledger is always the fold of the log:
//!
//! - the account streams bring identities, sessions and deposits
//!   ([`Ledger::apply`]);
//! - the market streams bring everything orders do to money
//!   ([`Ledger::apply_market`]). What an open order holds is its open cost,
//!   a function of its terms and fills as its book's events say them
//!   ([`open_cost`]), and a trade moves both sides' funds with the fees
//!   written in it ([`Fees::stamp`]).
//!
//! So no order ever writes to an account stream, and what an order holds
//! can never lag behind its book. Before the book decides a command, the
//! exchange asks [`Ledger::needs`] what it must have available and checks
//! it ([`Ledger::check_available`]) against the ledger with every earlier
//! decision folded in; [`invariants`] proves the rules from outside.
//!
//! # Events
//!
//! JSON objects with `schema_version` (now [`SCHEMA_VERSION`]) and `type`;
//! amounts are decimal strings, times microseconds since the Unix epoch.
//! `AccountOpened` goes to the registry stream; every other event goes to
//! the stream of the account it names.
//!
//! It also owns [`compact_table`], the compact form of long tables in
//! snapshots (its ledger's fills, and the exchange's order history and
//! trades), which read back many times faster than JSON.
//!
//! - `AccountOpened`: `account`, `username`, `password_hash` (PHC string), `at`.
//! - `FundsDeposited`: `account`, `asset`, `amount`, `source` (`faucet`), `at`.
//! - `OrderRefused` (version 2): `account`, `symbol`, `side`, `order_type`,
//!   `price`, `quantity`, `quote_amount` (as asked), `trigger`, `reason`
//!   (the words the trader was answered with), `at`. Moves no money; it
//!   keeps a refused order in the trader's history. Only logs written
//!   before market schema version 6 hold it: refusals are now the book's
//!   `OrderRefused`, in the market's stream.
//! - `SessionStarted` / `SessionEnded`: `account`, `token_hash`, `at`.
//!
//! Logs written before version 3 also hold the events with which orders
//! used to hold and settle funds; they are still read, and fold to the
//! same balances:
//!
//! - `FundsReserved`: `account`, `symbol`, `order_id`, `asset`, `amount`,
//!   `at`; `FundsReleased` (… `reason`, `market_revision`) and
//!   `ReservationChanged` (version 2: … `change`, `market_revision`). What
//!   an order holds now follows from its market stream, which such logs
//!   have too, so these move nothing.
//! - `TradeSettled`: `account`, `symbol`, `trade_id`, `order_id`, `role`
//!   (`maker`/`taker`), `side`, `price`, `quantity`, `paid_asset`, `paid`,
//!   `received_asset`, `received` (before the fee), `fee` (in the received
//!   asset), `market_revision`, `at`: the money of a trade written without
//!   fees. A trade of such a log that no `TradeSettled` settled yet (a
//!   crash came between) is settled once at start
//!   ([`Ledger::legacy_settlement`]).

pub mod api_key;
pub mod compact_table;
mod config;
mod cost;
mod decide;
mod event;
mod fill_log;
pub mod invariants;
mod ledger;
mod ledger_snapshot;

pub use config::{Faucet, FaucetGrant, Fees, Role};
pub use cost::{amend_cost, fills, open_cost, order_cost};
pub use decide::{AccountError, valid_ip_or_network, validate_password, validate_username};
pub use event::{
    AccountEvent, AccountEventDecodeError, DepositSource, ReleaseReason, SCHEMA_VERSION,
    TradeSettled,
};
pub use fill_log::{FillLog, FillRef, FillSource};
pub use ledger::{Account, Balance, Ledger, LedgerGap, RECENT_FILLS, Reservation};
pub use ledger_snapshot::{LedgerSnapshot, LedgerSnapshotError};
