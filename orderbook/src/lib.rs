//! The order book aggregate: a pure, event-sourced matching engine.
//!
//! This crate owns the rules of trading one market: which orders are valid,
//! how they match (price-time priority, at the maker's price), and what is
//! recorded when they do. It does no I/O, reads no clock and draws no random
//! numbers: time and ids come in with each [`Command`]. [`Book::decide`]
//! turns a command and the current state into [`Event`]s without changing
//! anything; [`Book::apply`] is the only way state changes, so the state is
//! always the fold of its events and can be rebuilt from the log (or from a
//! [`Snapshot`] plus the events after it).
//!
//! Prices and quantities are [`rust_decimal::Decimal`] at every boundary.
//! Inside, a price is a whole number of ticks and a quantity a whole number
//! of lots ([`Market`]), so matching is exact integer arithmetic; anything
//! off the grid is rejected with a typed [`RejectReason`], never rounded.
//! Accounts and balances are not this crate's concern, but every event
//! carries what settlement needs.
//!
//! # Events
//!
//! Every event is written as one JSON object with `schema_version` (now
//! [`SCHEMA_VERSION`]) and `type` (the variant name); prices and quantities
//! are decimal strings; times are microseconds since the Unix epoch.
//!
//! - [`OrderAccepted`]: an order passed validation. Fields: `symbol`,
//!   `order_id`, `account`, `side` (`buy`/`sell`), `order_type`
//!   (`limit`/`market`), `price` (limit orders), `quantity` (base; absent
//!   when sized by quote), `quote_amount` (market orders sized by quote),
//!   `time_in_force` (`GTC`/`IOC`/`FOK`), `post_only`,
//!   `self_trade_prevention` (`cancel_taker`/`cancel_maker`/`cancel_both`),
//!   `trigger` (stop and take-profit orders only: `kind` `stop` or
//!   `take_profit`, and `price`), `client_order_id` (version 5: the
//!   trader's own id for the order, when given), `at`.
//! - [`OrderRejected`]: a command was refused and changed nothing. Fields:
//!   `symbol`, `order_id`, `account`, `reason` ([`RejectReason`], snake
//!   case), `at`.
//! - [`TradeExecuted`]: two orders traded. Fields: `symbol`, `trade_id`
//!   (sequential per market from 1), `price` (the maker's), `quantity`
//!   (base), `maker_order_id`, `taker_order_id`, `maker_account`,
//!   `taker_account`, `taker_side`, `executed_at`, and (version 3) `fees`:
//!   `maker` and `taker`, each in the asset that side received, set by the
//!   exchange before it writes the trade (the book leaves it out). The
//!   quote amount that changed hands is exactly `price * quantity`.
//! - [`OrderCancelled`]: an order left with something unfilled. Fields:
//!   `symbol`, `order_id`, `account`, `side`, `price` (limit orders),
//!   `remaining_quantity` (base released; absent for quote-sized orders),
//!   `remaining_quote_amount` (quote-sized orders), `reason`
//!   ([`CancelReason`]: `user`, `immediate_or_cancel_remainder`,
//!   `fill_or_kill_unfilled`, `market_order_remainder`,
//!   `self_trade_prevention`), `at`.
//! - [`OrderAmended`]: an open order changed. Fields: `symbol`, `order_id`,
//!   `account`, `side`, `old_price`, `old_quantity`, `price`, `quantity`
//!   (the new open quantity), `priority_kept` (only the quantity went down),
//!   `at`.
//! - [`OrderFilled`]: an order filled completely. Fields: `symbol`,
//!   `order_id`, `account`, `side`, `at`.
//! - [`StopTriggered`] (version 2): a held order fired and enters the book
//!   now. Fields: `symbol`, `order_id`, `account`, `side`, `trigger`,
//!   `trade_id` and `last_price` (the trade that fired it), `at`.
//! - [`StopAmended`] (version 2): a held order changed. Fields: `symbol`,
//!   `order_id`, `account`, `side`, `old_trigger_price`, `trigger_price`,
//!   `old_price`/`price` (stop-limits), `old_quantity`/`quantity` (orders
//!   sized by quantity), `at`.
//! - [`OrderRefused`] (version 6): a placement the exchange refused (the
//!   book's rules, the account's funds, a cap), written with the batch it
//!   was decided in so its trader's history keeps it; no book changes.
//!   Fields: `symbol`, `account`, `terms` (`side`, `type`, `price`,
//!   `quantity`, `quote_amount`, `time_in_force`, `post_only`,
//!   `self_trade_prevention`, `trigger`), `client_order_id`, `reason` (the
//!   words the trader was answered with), `at`.
//!
//! # Stop and take-profit orders
//!
//! A [`PlaceOrder`] with a [`Trigger`] is accepted (its `OrderAccepted`
//! carries the trigger) and held off the book: it does not trade and is
//! not in the depth. It fires at the first trade whose price reaches its
//! trigger: a buy stop at or above the trigger price, a sell stop at or
//! below it; a buy take-profit at or below, a sell take-profit at or
//! above. It then enters, in the same decision as that trade, as the
//! market or limit order it describes, against the book as the events
//! before it left it; `StopTriggered` and then its own events (trades,
//! then filled, cancelled or resting) follow the events of the command
//! that made the trade.
//!
//! The rule when several orders fire in one decision: by trade, in the
//! order of the trades; for one trade, in the order the price passed their
//! triggers (orders waiting for a rise from the lowest trigger up, orders
//! waiting for a fall from the highest down), and at one trigger price by
//! time (the lower order id first). Trades of the orders that fired may
//! fire more; those enter after every order already fired. An order fires
//! once, and never on its own trades: it is no longer held once it fires.
//!
//! A stop order is refused before the market's first trade (there is no
//! last price to trigger from) and when the last price already reaches its
//! trigger (so no held order ever waits with its trigger reached). It can
//! be cancelled (releasing all it would have entered with) and amended:
//! its trigger price, a stop-limit's limit price, or its quantity.
//!
//! One command's events come in this order: the acceptance (or amendment),
//! then each trade followed by the maker's `OrderFilled` when it filled,
//! then at most one final event for the incoming order (`OrderFilled`, or
//! `OrderCancelled` with what was left). A limit GTC order with no final
//! event rests on the book. Then each held order the trades fired, in
//! order: its `StopTriggered` and its own events in the same shape.

mod book;
mod client_ids;
mod command;
mod decide;
mod event;
pub mod invariants;
mod ladder;
mod market;
mod matching;
mod order;
mod reason;
pub mod sim;
mod snapshot;
mod stops;

pub use book::{Book, Depth, OrderStatus, PriceLevel, RestingOrder, StopOrder};
pub use client_ids::{BadClientOrderId, ClientOrderId, MAX_CLIENT_ORDER_ID_LEN};
pub use command::{AmendOrder, CancelOrder, Command, OrderTerms, PlaceOrder};
pub use event::{
    Event, EventDecodeError, OrderAccepted, OrderAmended, OrderCancelled, OrderFilled,
    OrderRefused, OrderRejected, SCHEMA_VERSION, StopAmended, StopTriggered, StreamFenced,
    TradeExecuted, TradeFees,
};
pub use market::{
    MAX_LOTS, MAX_SYMBOL_LEN, MAX_TICKS, Market, MarketError, MarketSpec, Symbol, SymbolError,
};
pub use order::{
    AccountId, OrderId, OrderKind, OrderType, SelfTradePrevention, Side, TimeInForce, Timestamp,
    TradeId, Trigger, TriggerKind, UnknownWord,
};
pub use reason::{CancelReason, RejectReason};
pub use snapshot::{SNAPSHOT_VERSION, Snapshot, SnapshotError};
