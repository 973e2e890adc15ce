//! The order history (`order_history.rs`) written down for a start to
//! take up (`start_snapshots.rs`). Most of a long history is closed
//! orders: each is a row of a compact table (`compact_table.rs`), which
//! reads back many times faster than JSON. The others are written whole.

use std::ops::ControlFlow;

use orderbook::{AccountId, CancelReason, ClientOrderId, OrderId, OrderTerms, Symbol, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::order_history::{ClosedOrder, OrderEntry, OrderHistory, OrderRecord, OrderState};
use super::order_list::OrderList;
use accounts::compact_table::{CompactTable, TableError, TableReader, TableWriter};

/// The order history as written down. Read back with
/// [`OrderHistory::from_snapshot`], it is the same history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderHistorySnapshot {
    /// The markets closed orders are in, by place.
    markets: Vec<String>,
    /// Every account's orders; accounts by id.
    accounts: Vec<AccountOrders>,
}

/// One account's orders, in the order they entered the log: those kept
/// whole by their place in that list, and the closed ones' rows in the
/// places between. Which places hold its orders in a market, in order of
/// their ids, is not written: it follows from the orders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AccountOrders {
    account: AccountId,
    /// How many orders it has, whole and closed.
    orders: usize,
    /// Place, record, revision of its `OrderAccepted` (see
    /// [`OrderEntry::Whole`]).
    whole: Vec<(usize, RecordSnapshot, Option<u64>)>,
    /// Each closed order, as [`ClosedOrder::write_row`] writes it, each
    /// from the row before (the first from zeros).
    closed: CompactTable,
}
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RecordSnapshot {
    symbol: String,
    order_id: Option<OrderId>,
    terms: OrderTerms,
    client_order_id: Option<ClientOrderId>,
    filled: Decimal,
    filled_quote: Decimal,
    state: StateSnapshot,
    triggered_at: Option<Timestamp>,
    placed_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum StateSnapshot {
    Open,
    PartiallyFilled,
    Filled,
    Cancelled(CancelReason),
    Rejected(String),
}

impl OrderHistory {
    /// This history written down.
    pub fn snapshot(&self) -> OrderHistorySnapshot {
        let mut accounts: Vec<_> = (self.accounts.iter())
            .map(|(id, orders)| account_orders(*id, orders))
            .collect();
        accounts.sort_by_key(|a| a.account);
        OrderHistorySnapshot {
            markets: self.markets.iter().map(|m| m.to_string()).collect(),
            accounts,
        }
    }

    /// The history a snapshot wrote down. An error if it is not one
    /// [`OrderHistory::snapshot`] could have written (a place or market
    /// out of range, rows that do not read back, a market name that is
    /// not a symbol).
    pub fn from_snapshot(s: OrderHistorySnapshot) -> Result<OrderHistory, String> {
        let mut history = OrderHistory::default();
        let mut symbols = Vec::new();
        for m in &s.markets {
            symbols.push(Symbol::new(m).map_err(|e| format!("market {m}: {e}"))?);
            let name = history.name(m);
            history.markets.push(name);
        }
        for a in s.accounts {
            let account = a.account;
            let orders = history
                .account_from(a, &symbols)
                .map_err(|e| format!("the orders of account {account}: {e}"))?;
            if history.accounts.insert(account, orders).is_some() {
                return Err(format!("account {account} is written twice"));
            }
        }
        Ok(history)
    }

    /// One account's orders as written down.
    fn account_from(&mut self, a: AccountOrders, symbols: &[Symbol]) -> Result<OrderList, String> {
        let mut kept = OrderList::default();
        let mut whole = a.whole.into_iter().peekable();
        let mut rows = TableReader::new(&a.closed);
        let mut last = [0; 3];
        for place in 0..a.orders {
            if let Some((_, record, accepted_revision)) = whole.next_if(|w| w.0 == place) {
                kept.push(OrderEntry::Whole {
                    record: Box::new(self.record(record)),
                    accepted_revision,
                });
                continue;
            }
            let row = ClosedOrder::read_row(&mut rows, &mut last, symbols.len())?;
            kept.push(OrderEntry::Closed(row));
        }
        if let Some((place, ..)) = whole.next() {
            return Err(format!(
                "an order whole at {place}, out of order or beyond its {} orders",
                a.orders
            ));
        }
        rows.finish().map_err(|e: TableError| e.to_string())?;
        Ok(kept)
    }

    /// A record written down, its market's name shared.
    fn record(&mut self, r: RecordSnapshot) -> OrderRecord {
        OrderRecord {
            symbol: self.name(&r.symbol),
            order_id: r.order_id,
            terms: r.terms,
            client_order_id: r.client_order_id,
            filled: r.filled,
            filled_quote: r.filled_quote,
            state: match r.state {
                StateSnapshot::Open => OrderState::Open,
                StateSnapshot::PartiallyFilled => OrderState::PartiallyFilled,
                StateSnapshot::Filled => OrderState::Filled,
                StateSnapshot::Cancelled(reason) => OrderState::Cancelled(reason),
                StateSnapshot::Rejected(why) => OrderState::Rejected(why),
            },
            triggered_at: r.triggered_at,
            placed_at: r.placed_at,
            updated_at: r.updated_at,
        }
    }
}

/// One account's orders written down.
fn account_orders(account: AccountId, orders: &OrderList) -> AccountOrders {
    let mut whole = Vec::new();
    let mut rows = TableWriter::default();
    let mut last = [0; 3];
    let _ = orders.walk(
        0..orders.len(),
        false,
        |_| true,
        |place, o| {
            match o {
                OrderEntry::Whole {
                    record,
                    accepted_revision,
                } => whole.push((place, record_snapshot(record), *accepted_revision)),
                OrderEntry::Closed(c) => c.write_row(&mut rows, &mut last),
            }
            ControlFlow::Continue(())
        },
    );
    AccountOrders {
        account,
        orders: orders.len(),
        whole,
        closed: rows.finish(),
    }
}

fn record_snapshot(r: &OrderRecord) -> RecordSnapshot {
    RecordSnapshot {
        symbol: r.symbol.to_string(),
        order_id: r.order_id,
        terms: r.terms,
        client_order_id: r.client_order_id.clone(),
        filled: r.filled,
        filled_quote: r.filled_quote,
        state: match &r.state {
            OrderState::Open => StateSnapshot::Open,
            OrderState::PartiallyFilled => StateSnapshot::PartiallyFilled,
            OrderState::Filled => StateSnapshot::Filled,
            OrderState::Cancelled(reason) => StateSnapshot::Cancelled(*reason),
            OrderState::Rejected(why) => StateSnapshot::Rejected(why.clone()),
        },
        triggered_at: r.triggered_at,
        placed_at: r.placed_at,
        updated_at: r.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use orderbook::sim::Flow;
    use orderbook::{Book, Event, Market, OrderAccepted};
    use serde_json::Value;

    use super::*;
    use crate::server::order_history::{MarketOrders, OrderFilter};
    use crate::server::order_list::RUN;

    /// A random flow on two markets (every order type, stops, amends and
    /// cancels), a refusal, and an order adopted out of its order.
    fn folded() -> OrderHistory {
        let markets = Market::defaults();
        let mut flow = Flow::new(5, markets.clone());
        let mut books: HashMap<Symbol, Book> = (markets.iter())
            .map(|m| (m.symbol, Book::new(m.clone())))
            .collect();
        let mut revisions: HashMap<Symbol, u64> = HashMap::new();
        let mut h = OrderHistory::default();
        let mut accepted: Option<OrderAccepted> = None;
        for i in 0..40_000 {
            let command = flow.next_command();
            let book = books.get_mut(command.symbol()).unwrap();
            for e in book.decide(&command) {
                book.apply(&e);
                let revision = revisions.entry(*e.symbol()).or_default();
                // The first order of account 1 is left for adopting.
                match &e {
                    Event::OrderAccepted(a) if a.account == 1 && accepted.is_none() && i > 10 => {
                        accepted = Some(a.clone());
                    }
                    _ => h.apply_market(&e, Some(*revision)),
                }
                *revision += 1;
            }
        }
        let a = accepted.unwrap();
        let record = OrderRecord::from_events(
            a.account,
            a.symbol.as_str(),
            a.order_id,
            &[Event::OrderAccepted(a.clone())],
        )
        .unwrap();
        h.adopt(a.account, record.clone());
        let refused = OrderRecord {
            order_id: None,
            state: OrderState::Rejected("not enough USD".into()),
            ..record
        };
        h.adopt(2, refused);
        h
    }

    /// Counts of orders by market, state and when placed equal a look at
    /// every order the filter keeps, though the rows of runs placed wholly
    /// in the range are counted from the runs' bounds.
    #[test]
    fn counts_equal_a_look_at_every_order() {
        let h = folded();
        let mut rng = orderbook::sim::Rng::new(3);
        let mut symbols: Vec<Option<String>> = vec![None, Some("NO-SUCH".into())];
        symbols.extend(h.markets.iter().map(|m| Some(m.to_string())));
        let states = [
            None,
            Some("filled"),
            Some("cancelled"),
            Some("open"),
            Some("rejected"),
        ];
        let mut counted_some = false;
        for account in h.accounts.keys() {
            let every = h.all(*account, &OrderFilter::default());
            let placed: Vec<u64> = every.iter().map(|o| o.entry.placed_at() / 1000).collect();
            let (first, last) = (*placed.iter().min().unwrap(), *placed.iter().max().unwrap());
            for symbol in &symbols {
                for state in states {
                    let filter = OrderFilter {
                        symbol: symbol.clone(),
                        state: state.map(str::to_string),
                    };
                    let kept = h.all(*account, &filter);
                    let mut ranges = vec![0..u64::MAX, first..last + 1, first + 1..last];
                    for _ in 0..8 {
                        let a = first + rng.below(last - first + 1);
                        let b = first + rng.below(last - first + 1);
                        ranges.push(a.min(b)..a.max(b) + 1);
                    }
                    for range in ranges {
                        let expected = (kept.iter())
                            .filter(|o| range.contains(&(o.entry.placed_at() / 1000)))
                            .count();
                        assert_eq!(
                            h.count(*account, &filter, &range),
                            expected,
                            "account {account}, {filter:?}, {range:?}"
                        );
                        counted_some |= expected > 2 * RUN;
                    }
                }
            }
        }
        assert!(counted_some, "counts over several packed runs");
    }

    /// A market's orders from an id or within a time, the first or the
    /// newest up to a limit (Binance's `allOrders`), are those a look at
    /// every order finds, though only the runs that can hold them are
    /// unpacked.
    #[test]
    fn a_markets_orders_from_an_id_or_a_time_are_those_of_every_order() {
        let h = folded();
        let mut rng = orderbook::sim::Rng::new(5);
        for account in h.accounts.keys() {
            let mut every = h.all(*account, &OrderFilter::default());
            every.reverse();
            for symbol in h.markets.iter() {
                let of_market: Vec<&OrderEntry> = (every.iter())
                    .filter(|o| o.entry.order_id().is_some() && o.symbol == *symbol)
                    .map(|o| &o.entry)
                    .collect();
                let ids: Vec<u64> = of_market.iter().filter_map(|o| o.order_id()).collect();
                let times: Vec<u64> = of_market.iter().map(|o| o.placed_at() / 1000).collect();
                for _ in 0..30 {
                    let pick = |rng: &mut orderbook::sim::Rng, of: &[u64]| {
                        of[rng.below(of.len() as u64) as usize]
                    };
                    let from = rng.chance(40).then(|| pick(&mut rng, &ids));
                    let start = rng.chance(40).then(|| pick(&mut rng, &times));
                    let end = rng.chance(40).then(|| pick(&mut rng, &times));
                    let placed = start.unwrap_or(0)..=end.unwrap_or(u64::MAX);
                    let limit = [1, 7, 500, 1000][rng.below(4) as usize];
                    let newest = from.is_none() && start.is_none();
                    let mut kept: Vec<&OrderEntry> = (of_market.iter().copied())
                        .filter(|o| o.order_id() >= from.or(Some(0)))
                        .filter(|o| placed.contains(&(o.placed_at() / 1000)))
                        .collect();
                    match newest {
                        true => drop(kept.drain(..kept.len().saturating_sub(limit))),
                        false => kept.truncate(limit),
                    }
                    let wanted = MarketOrders {
                        from,
                        placed_ms: placed.clone(),
                        limit,
                        newest,
                    };
                    let found = h.in_market(*account, symbol, &wanted);
                    let kept: Vec<OrderEntry> = kept.into_iter().cloned().collect();
                    assert_eq!(found, kept, "{from:?} {placed:?} {limit} {newest}");
                }
            }
        }
    }

    type Change = Box<dyn FnOnce(&mut Value)>;

    fn changed(form: &Value, change: impl FnOnce(&mut Value)) -> Result<OrderHistory, String> {
        let mut form = form.clone();
        change(&mut form);
        OrderHistory::from_snapshot(serde_json::from_value(form).map_err(|e| e.to_string())?)
    }

    /// Written down and read back, the history is the same: its orders
    /// at their places, each order found by its id, and its markets. A
    /// form that does not add up is refused.
    #[test]
    fn a_history_written_down_reads_back_the_same_and_damage_is_refused() {
        let h = folded();
        let mut all = Vec::new();
        for (account, list) in &h.accounts {
            let _ = list.walk(
                0..list.len(),
                false,
                |_| true,
                |_, o| {
                    all.push((*account, h.symbol_of(o).clone(), o.clone()));
                    ControlFlow::Continue(())
                },
            );
        }
        assert!(
            h.accounts.values().any(|l| l.len() > 3 * RUN),
            "some runs are packed"
        );
        let closed: Vec<&ClosedOrder> = (all.iter())
            .filter_map(|(_, _, o)| match o {
                OrderEntry::Closed(c) => Some(c),
                OrderEntry::Whole { .. } => None,
            })
            .collect();
        let mut reasons = Vec::new();
        for c in &closed {
            if !reasons.contains(&c.cancelled) {
                reasons.push(c.cancelled);
            }
        }
        assert!(
            reasons.len() >= 4,
            "filled and several reasons: {reasons:?}"
        );
        assert!(closed.iter().any(|c| c.client_order_id.is_some()));
        assert!(all.iter().filter(|(_, _, o)| o.whole().is_some()).count() > 10);
        assert!(closed.len() > 1_000);

        let form = serde_json::to_value(h.snapshot()).unwrap();
        let back = changed(&form, |_| {}).unwrap();
        assert_eq!(back.accounts, h.accounts);
        assert_eq!(back.markets, h.markets);
        for (account, symbol, o) in all.iter().step_by(17) {
            let Some(id) = o.order_id() else { continue };
            let found = back.order(*account, symbol, id);
            assert_eq!(found, h.order(*account, symbol, id));
            assert_eq!(found.map(|f| f.entry).as_ref(), Some(o));
        }

        let orders = form["accounts"][0]["orders"].as_u64().unwrap();
        let damaged: Vec<(&str, Change)> = vec![
            (
                "one order more",
                Box::new(move |f| f["accounts"][0]["orders"] = (orders + 1).into()),
            ),
            (
                "one order fewer",
                Box::new(move |f| f["accounts"][0]["orders"] = (orders - 1).into()),
            ),
            (
                "a byte after the rows",
                Box::new(|f| {
                    let rows = f["accounts"][0]["closed"].as_str().unwrap();
                    let mut bytes = STANDARD.decode(rows).unwrap();
                    bytes.push(0);
                    f["accounts"][0]["closed"] = STANDARD.encode(bytes).into();
                }),
            ),
            (
                "no markets",
                Box::new(|f| f["markets"] = Value::Array(Vec::new())),
            ),
            (
                "a whole order past the end",
                Box::new(move |f| {
                    let whole = f["accounts"][0]["whole"].as_array_mut().unwrap();
                    whole.last_mut().unwrap()[0] = orders.into();
                }),
            ),
            (
                "an account twice",
                Box::new(|f| {
                    let accounts = f["accounts"].as_array_mut().unwrap();
                    accounts.push(accounts[0].clone());
                }),
            ),
        ];
        for (what, change) in damaged {
            assert!(changed(&form, change).is_err(), "{what} is refused");
        }
    }
}
