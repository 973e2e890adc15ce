//! The JSON shapes of Binance's spot API, made from ours: an order (as
//! `GET /order`, `openOrders` and `allOrders` answer it, and as a new
//! order's answer with its fills), a trade of the caller's, and the words
//! (order types, statuses, self-trade modes) each side uses. Every amount
//! is an exact decimal string.

use accounts::TradeSettled;
use orderbook::{
    CancelReason, ClientOrderId, Event, MarketSpec, OrderKind, OrderTerms, OrderType,
    SelfTradePrevention, Side, TimeInForce, Trigger, TriggerKind,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::reply::{Refusal, market_id};
use crate::server::{OrderRecord, OrderState};

/// The order types listed in `exchangeInfo`: every kind we trade.
pub const ORDER_TYPES: [&str; 7] = [
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
];

/// The self-trade modes listed in `exchangeInfo`.
pub const STP_MODES: [&str; 3] = ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"];

pub fn number(d: Decimal) -> String {
    d.normalize().to_string()
}

pub fn side_word(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

pub fn stp_word(stp: SelfTradePrevention) -> &'static str {
    match stp {
        SelfTradePrevention::CancelTaker => "EXPIRE_TAKER",
        SelfTradePrevention::CancelMaker => "EXPIRE_MAKER",
        SelfTradePrevention::CancelBoth => "EXPIRE_BOTH",
    }
}

fn tif_word(tif: TimeInForce) -> &'static str {
    tif.as_str()
}

/// Binance's name for an order of these terms.
pub fn type_word(terms: &OrderTerms) -> &'static str {
    match terms.kind() {
        OrderKind::Limit if terms.post_only => "LIMIT_MAKER",
        OrderKind::Limit => "LIMIT",
        OrderKind::Market => "MARKET",
        OrderKind::StopLimit => "STOP_LOSS_LIMIT",
        OrderKind::StopMarket => "STOP_LOSS",
        OrderKind::TakeProfitLimit => "TAKE_PROFIT_LIMIT",
        OrderKind::TakeProfitMarket => "TAKE_PROFIT",
    }
}

pub fn status_word(state: &OrderState) -> &'static str {
    match state {
        OrderState::Open => "NEW",
        OrderState::PartiallyFilled => "PARTIALLY_FILLED",
        OrderState::Filled => "FILLED",
        OrderState::Cancelled(CancelReason::User) => "CANCELED",
        OrderState::Cancelled(CancelReason::SelfTradePrevention) => "EXPIRED_IN_MATCH",
        OrderState::Cancelled(_) => "EXPIRED",
        OrderState::Rejected(_) => "REJECTED",
    }
}

/// A new order's parameters read as our terms. Binance's words: `side`,
/// `type`, `timeInForce`, `price`, `quantity`, `quoteOrderQty`,
/// `stopPrice`, `selfTradePreventionMode`.
pub fn order_terms(get: impl Fn(&str) -> Option<String>) -> Result<OrderTerms, Refusal> {
    let decimal = |name: &str| -> Result<Option<Decimal>, Refusal> {
        get(name)
            .map(|v| {
                v.parse::<Decimal>()
                    .map_err(|_| Refusal::illegal(name, format!("{v:?} is not a decimal number")))
            })
            .transpose()
    };
    let side = match get("side")
        .ok_or_else(|| Refusal::missing("side"))?
        .as_str()
    {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        other => return Err(Refusal::bad(-1117, format!("Invalid side: {other}."))),
    };
    let kind = get("type").ok_or_else(|| Refusal::missing("type"))?;
    let (order_type, trigger, post_only) = match kind.as_str() {
        "LIMIT" => (OrderType::Limit, None, false),
        "LIMIT_MAKER" => (OrderType::Limit, None, true),
        "MARKET" => (OrderType::Market, None, false),
        "STOP_LOSS" => (OrderType::Market, Some(TriggerKind::Stop), false),
        "STOP_LOSS_LIMIT" => (OrderType::Limit, Some(TriggerKind::Stop), false),
        "TAKE_PROFIT" => (OrderType::Market, Some(TriggerKind::TakeProfit), false),
        "TAKE_PROFIT_LIMIT" => (OrderType::Limit, Some(TriggerKind::TakeProfit), false),
        other => {
            return Err(Refusal::bad(
                -1116,
                format!(
                    "Invalid orderType: {other} (this exchange takes {})",
                    ORDER_TYPES.join(", ")
                ),
            ));
        }
    };
    let time_in_force = match get("timeInForce").as_deref() {
        None => None,
        Some("GTC") => Some(TimeInForce::GoodTillCancelled),
        Some("IOC") => Some(TimeInForce::ImmediateOrCancel),
        Some("FOK") => Some(TimeInForce::FillOrKill),
        Some(other) => {
            return Err(Refusal::bad(
                -1115,
                format!("Invalid timeInForce: {other}."),
            ));
        }
    };
    let self_trade_prevention = match get("selfTradePreventionMode").as_deref() {
        None | Some("EXPIRE_TAKER") => SelfTradePrevention::CancelTaker,
        Some("EXPIRE_MAKER") => SelfTradePrevention::CancelMaker,
        Some("EXPIRE_BOTH") => SelfTradePrevention::CancelBoth,
        Some(other) => {
            return Err(Refusal::bad(
                -1013,
                format!(
                    "selfTradePreventionMode {other} is not offered: use {}",
                    STP_MODES.join(", ")
                ),
            ));
        }
    };
    let trigger = match (trigger, decimal("stopPrice")?) {
        (Some(kind), Some(price)) => Some(Trigger { kind, price }),
        (Some(_), None) => return Err(Refusal::missing("stopPrice")),
        (None, Some(_)) => {
            return Err(Refusal::bad(
                -1106,
                format!("Parameter 'stopPrice' sent when not required by a {kind} order."),
            ));
        }
        (None, None) => None,
    };
    let price = decimal("price")?;
    if order_type == OrderType::Limit && price.is_none() {
        return Err(Refusal::missing("price"));
    }
    let quantity = decimal("quantity")?;
    let quote_amount = decimal("quoteOrderQty")?;
    if quantity.is_none() && quote_amount.is_none() {
        return Err(Refusal::missing("quantity"));
    }
    Ok(OrderTerms {
        side,
        order_type,
        price: if order_type == OrderType::Limit {
            price
        } else {
            None
        },
        quantity,
        quote_amount,
        time_in_force,
        post_only,
        self_trade_prevention,
        trigger,
    })
}

/// One order as Binance shows it.
pub fn order_json(id: &str, o: &OrderRecord) -> Value {
    let t = &o.terms;
    let waiting = t.trigger.is_some() && o.triggered_at.is_none();
    let open = matches!(o.state, OrderState::Open | OrderState::PartiallyFilled);
    json!({
        "symbol": id,
        "orderId": o.order_id.unwrap_or_default(),
        "orderListId": -1,
        "clientOrderId": client_id(o.client_order_id.as_ref()),
        "price": number(t.price.unwrap_or_default()),
        "origQty": number(t.quantity.unwrap_or_default()),
        "executedQty": number(o.filled),
        "cummulativeQuoteQty": number(o.filled_quote),
        "status": status_word(&o.state),
        "timeInForce": tif_word(t.time_in_force.unwrap_or(match t.order_type {
            OrderType::Limit => TimeInForce::GoodTillCancelled,
            OrderType::Market => TimeInForce::ImmediateOrCancel,
        })),
        "type": type_word(t),
        "side": side_word(t.side),
        "stopPrice": number(t.trigger.map(|x| x.price).unwrap_or_default()),
        "icebergQty": "0",
        "time": o.placed_at / 1000,
        "updateTime": o.updated_at / 1000,
        "isWorking": open && !waiting,
        "workingTime": if waiting { -1 } else { (o.triggered_at.unwrap_or(o.placed_at) / 1000) as i64 },
        "origQuoteOrderQty": number(t.quote_amount.unwrap_or_default()),
        "selfTradePreventionMode": stp_word(t.self_trade_prevention),
    })
}

fn client_id(id: Option<&ClientOrderId>) -> String {
    id.map(|c| c.to_string()).unwrap_or_default()
}

/// A new order's answer (`newOrderRespType`): `ACK` (ids), `RESULT` (the
/// order) or `FULL` (the order and the fills of its own decision).
pub fn new_order_json(
    spec: &MarketSpec,
    o: &OrderRecord,
    events: &[Event],
    resp: &str,
    at_ms: u64,
) -> Value {
    let id = &market_id(spec);
    let mut out = order_json(id, o);
    out["transactTime"] = json!(at_ms);
    if resp == "ACK" {
        return json!({
            "symbol": id,
            "orderId": o.order_id.unwrap_or_default(),
            "orderListId": -1,
            "clientOrderId": client_id(o.client_order_id.as_ref()),
            "transactTime": at_ms,
        });
    }
    if resp == "FULL" {
        let order_id = o.order_id.unwrap_or_default();
        let fills: Vec<Value> = events
            .iter()
            .filter_map(|e| match e {
                Event::TradeExecuted(t)
                    if t.taker_order_id == order_id || t.maker_order_id == order_id =>
                {
                    Some(t)
                }
                _ => None,
            })
            .map(|t| {
                let taker = t.taker_order_id == order_id;
                let fee = t
                    .fees
                    .as_deref()
                    .map_or(Decimal::ZERO, |f| if taker { f.taker } else { f.maker });
                json!({
                    "price": number(t.price),
                    "qty": number(t.quantity),
                    "commission": number(fee),
                    "commissionAsset": match t.taker_side == Side::Buy && taker
                        || t.taker_side == Side::Sell && !taker
                    {
                        true => &spec.base,
                        false => &spec.quote,
                    },
                    "tradeId": t.trade_id,
                })
            })
            .collect();
        out["fills"] = Value::Array(fills);
    }
    out
}

/// One of the caller's trades (`myTrades`).
pub fn my_trade_json(id: &str, t: &TradeSettled) -> Value {
    json!({
        "symbol": id,
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": number(t.price),
        "qty": number(t.quantity),
        "quoteQty": number(t.price * t.quantity),
        "commission": number(t.fee),
        "commissionAsset": t.received_asset,
        "time": t.at / 1000,
        "isBuyer": t.side == Side::Buy,
        "isMaker": matches!(t.role, accounts::Role::Maker),
        "isBestMatch": true,
    })
}
