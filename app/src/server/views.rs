//! What the engine and the ledger hold, as the wire shows it: pure
//! conversions from `orderbook` and `accounts` types to the types of
//! [`crate::api`]. Amounts become exact decimal strings with no trailing
//! zeros; enums become the lower-case words the page styles by.

use accounts::{Account, Role, TradeSettled};
use orderbook::{
    CancelReason, Depth, Event, MarketSpec, OrderStatus, OrderType, PriceLevel, RestingOrder,
    StopOrder,
};
use rust_decimal::Decimal;

use super::order_history::{OrderRecord, OrderState};
use crate::api::{
    AccountView, BalanceView, DepthView, FillView, LevelView, MarketView, OpenOrderView,
    OrderRecordView, TickerView, TradeView,
};
use crate::candles::Series;

/// Fills an account view shows, newest first: those the ledger keeps
/// whole, so a view never reads the store.
pub const FILLS_SHOWN: usize = accounts::RECENT_FILLS;

/// An exact amount as the wire carries it.
fn amount(d: Decimal) -> String {
    d.normalize().to_string()
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Maker => "maker",
        Role::Taker => "taker",
    }
}

/// A trade event as the tape shows it; `None` for every other event.
pub fn trade_view(event: &Event) -> Option<TradeView> {
    let Event::TradeExecuted(t) = event else {
        return None;
    };
    Some(TradeView {
        trade_id: t.trade_id,
        price: amount(t.price),
        quantity: amount(t.quantity),
        taker_side: t.taker_side.as_str().to_string(),
        at_ms: t.executed_at / 1000,
    })
}

/// The ticker from one-minute candles and the last trade: the window is the
/// minutes that overlap the 24 hours before `now_ms`.
pub fn ticker_view(minutes: &Series, last: Option<&TradeView>, now_ms: u64) -> TickerView {
    let since = now_ms.saturating_sub(86_400_000);
    // The minutes are oldest first and may go back years: find the day's.
    let from = minutes
        .candles
        .partition_point(|c| c.start_ms + 60_000 <= since);
    let window = &minutes.candles[from..];
    let last_price = last.map(|t| t.amounts().0);
    let open = window.first().map(|c| c.open);
    TickerView {
        last: last.map(|t| t.price.clone()),
        change_pct: match (open, last_price) {
            (Some(o), Some(l)) if o > 0.0 => Some((l - o) / o * 100.0),
            _ => None,
        },
        high: window.iter().map(|c| c.high).reduce(f64::max),
        low: window.iter().map(|c| c.low).reduce(f64::min),
        volume: window.iter().fold(0.0, |v, c| v + c.volume),
    }
}

/// A book's best levels, each with the running total from the best price.
pub fn depth_view(depth: Depth) -> DepthView {
    let side = |levels: Vec<PriceLevel>| {
        let mut total = Decimal::ZERO;
        levels
            .into_iter()
            .map(|l| {
                total += l.quantity;
                LevelView {
                    price: amount(l.price),
                    quantity: amount(l.quantity),
                    cumulative: amount(total),
                }
            })
            .collect()
    };
    DepthView {
        bids: side(depth.bids),
        asks: side(depth.asks),
    }
}

pub fn market_view(spec: &MarketSpec) -> MarketView {
    MarketView {
        symbol: spec.symbol.clone(),
        base: spec.base.clone(),
        quote: spec.quote.clone(),
        tick_size: amount(spec.tick_size),
        lot_size: amount(spec.lot_size),
        min_quantity: amount(spec.min_quantity),
    }
}

pub fn fill_view(t: &TradeSettled) -> FillView {
    FillView {
        symbol: t.symbol.to_string(),
        trade_id: t.trade_id,
        order_id: t.order_id,
        side: t.side.as_str().to_string(),
        role: role_name(t.role).to_string(),
        price: amount(t.price),
        quantity: amount(t.quantity),
        quote_amount: amount(t.price * t.quantity),
        fee: amount(t.fee),
        fee_asset: t.received_asset.to_string(),
        at_ms: t.at / 1000,
    }
}

/// Why an order left the book unfilled, in a few words.
pub fn cancel_reason(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::User => "cancelled by you",
        CancelReason::ImmediateOrCancelRemainder => {
            "immediate or cancel: the rest did not fill at once"
        }
        CancelReason::FillOrKillUnfilled => {
            "fill or kill: the book could not fill all of it at once"
        }
        CancelReason::MarketOrderRemainder => "not enough liquidity for the rest",
        CancelReason::SelfTradePrevention => "it would have traded with your own order",
    }
}

/// One order of the history, with its fills (in any order: shown oldest
/// first).
pub fn order_record_view(o: &OrderRecord, mut fills: Vec<&TradeSettled>) -> OrderRecordView {
    fills.sort_by_key(|t| t.trade_id);
    let fee_asset = fills.first().map(|t| t.received_asset.to_string());
    let fee = fee_asset
        .as_ref()
        .map(|_| amount(fills.iter().map(|t| t.fee).sum()));
    OrderRecordView {
        symbol: o.symbol.to_string(),
        order_id: o.order_id,
        side: o.terms.side.as_str().to_string(),
        order_type: o.terms.order_type.as_str().to_string(),
        trigger: o.terms.trigger.map(|t| t.kind.as_str().to_string()),
        trigger_price: o.terms.trigger.map(|t| amount(t.price)),
        triggered_ms: o.triggered_at.map(|t| t / 1000),
        time_in_force: o.terms.time_in_force.map(|t| t.as_str().to_string()),
        price: o.terms.price.map(amount),
        quantity: o.terms.quantity.map(amount),
        quote_amount: o.terms.quote_amount.map(amount),
        filled: amount(o.filled),
        average_price: o.average_price().map(amount),
        fee,
        fee_asset,
        state: o.state.name().to_string(),
        reason: match &o.state {
            OrderState::Cancelled(r) => Some(cancel_reason(*r).to_string()),
            OrderState::Rejected(r) => Some(r.clone()),
            _ => None,
        },
        placed_ms: o.placed_at / 1000,
        updated_ms: o.updated_at / 1000,
        fills: fills.into_iter().map(fill_view).collect(),
    }
}

/// One of the account's orders resting on the book of `symbol`.
pub fn open_order_view(symbol: &str, o: &RestingOrder) -> OpenOrderView {
    OpenOrderView {
        symbol: symbol.to_string(),
        order_id: o.order_id,
        side: o.side.as_str().to_string(),
        price: amount(o.price),
        quantity: amount(o.remaining_quantity + o.filled_quantity),
        filled: amount(o.filled_quantity),
        remaining: amount(o.remaining_quantity),
        status: match o.status {
            OrderStatus::Open => "open",
            OrderStatus::PartiallyFilled => "partially filled",
        }
        .to_string(),
        order_type: OrderType::Limit.as_str().to_string(),
        quote_amount: None,
        trigger: None,
        trigger_price: None,
        at_ms: o.accepted_at / 1000,
    }
}

/// One of the account's stop or take-profit orders waiting for its trigger
/// on the market `symbol`.
pub fn stop_order_view(symbol: &str, o: &StopOrder) -> OpenOrderView {
    let quantity = o.quantity.map(amount).unwrap_or_default();
    OpenOrderView {
        symbol: symbol.to_string(),
        order_id: o.order_id,
        side: o.side.as_str().to_string(),
        order_type: o.order_type.as_str().to_string(),
        price: o.price.map(amount).unwrap_or_default(),
        quantity: quantity.clone(),
        quote_amount: o.quote_amount.map(amount),
        filled: "0".to_string(),
        remaining: quantity,
        status: "waiting".to_string(),
        trigger: Some(o.trigger.kind.as_str().to_string()),
        trigger_price: Some(amount(o.trigger.price)),
        at_ms: o.accepted_at / 1000,
    }
}

/// An account with its resting orders (in any order: shown newest first)
/// and its last [`FILLS_SHOWN`] fills.
pub fn account_view(a: &Account, mut open_orders: Vec<OpenOrderView>) -> AccountView {
    open_orders.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.order_id.cmp(&a.order_id)));
    AccountView {
        username: a.username.clone(),
        balances: a
            .balances
            .iter()
            .map(|(asset, b)| BalanceView {
                asset: asset.clone(),
                available: amount(b.available()),
                reserved: amount(b.reserved),
                total: amount(b.total),
            })
            .collect(),
        open_orders,
        fills: a
            .recent_fills
            .iter()
            .rev()
            .take(FILLS_SHOWN)
            .map(fill_view)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use accounts::Balance;
    use orderbook::{SelfTradePrevention, Side};

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn level(price: &str, quantity: &str) -> PriceLevel {
        PriceLevel {
            price: d(price),
            quantity: d(quantity),
            orders: 1,
        }
    }

    fn resting(order_id: u64, filled: &str, accepted_at: u64) -> RestingOrder {
        RestingOrder {
            order_id,
            account: 1,
            side: Side::Sell,
            price: d("30000.50"),
            remaining_quantity: d("0.250"),
            filled_quantity: d(filled),
            status: if d(filled).is_zero() {
                OrderStatus::Open
            } else {
                OrderStatus::PartiallyFilled
            },
            post_only: false,
            self_trade_prevention: SelfTradePrevention::CancelTaker,
            client_order_id: None,
            accepted_at,
        }
    }

    /// Each side totals from its best price; amounts lose trailing zeros.
    #[test]
    fn depth_runs_totals_from_the_best_price() {
        let view = depth_view(Depth {
            bids: vec![level("99.50", "1.0"), level("99", "2.50")],
            asks: vec![level("100.10", "0.5")],
        });
        let row = |l: &LevelView| (l.price.clone(), l.quantity.clone(), l.cumulative.clone());
        let bids: Vec<_> = view.bids.iter().map(row).collect();
        assert_eq!(
            bids,
            [
                ("99.5".into(), "1".into(), "1".into()),
                ("99".into(), "2.5".into(), "3.5".into())
            ]
        );
        assert_eq!(view.asks[0].cumulative, "0.5");
    }

    #[test]
    fn a_trade_shows_its_takers_side_and_milliseconds() {
        let trade = orderbook::TradeExecuted {
            symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
            trade_id: 7,
            price: d("30000.00"),
            quantity: d("0.10"),
            maker_order_id: 1,
            taker_order_id: 2,
            maker_account: 1,
            taker_account: 2,
            taker_side: Side::Buy,
            executed_at: 1_700_000_000_123_456,
            fees: None,
        };
        let view = trade_view(&Event::TradeExecuted(trade)).unwrap();
        assert_eq!(
            view,
            TradeView {
                trade_id: 7,
                price: "30000".into(),
                quantity: "0.1".into(),
                taker_side: "buy".into(),
                at_ms: 1_700_000_000_123,
            }
        );
    }

    /// An open order's quantity is what it was placed with; open orders
    /// come newest first, ties broken by the higher id.
    #[test]
    fn an_account_lists_its_orders_newest_first() {
        let mut account = Account::new(1, "alice".into(), String::new());
        account.balances = BTreeMap::from([(
            "USD".to_string(),
            Balance {
                total: d("100.00"),
                reserved: d("25.5"),
            },
        )]);
        account.stream_events = 3;
        let orders = vec![
            open_order_view("BTC-USD", &resting(1, "0", 5_000)),
            open_order_view("BTC-USD", &resting(3, "0.05", 9_000)),
            open_order_view("ETH-USD", &resting(2, "0", 9_000)),
        ];
        let view = account_view(&account, orders);
        let ids: Vec<u64> = view.open_orders.iter().map(|o| o.order_id).collect();
        assert_eq!(ids, [3, 2, 1]);
        let partly = &view.open_orders[0];
        assert_eq!(
            (
                partly.quantity.as_str(),
                partly.filled.as_str(),
                partly.status.as_str()
            ),
            ("0.3", "0.05", "partially filled")
        );
        assert_eq!(partly.remaining, "0.25");
        assert_eq!((partly.side.as_str(), partly.at_ms), ("sell", 9));
        let usd = &view.balances[0];
        assert_eq!(
            (
                usd.available.as_str(),
                usd.reserved.as_str(),
                usd.total.as_str()
            ),
            ("74.5", "25.5", "100")
        );
    }
}
