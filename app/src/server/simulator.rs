//! The market simulator: bot traders that make a fresh install look alive.
//!
//! Off by default (`--simulate`). A handful of bot accounts quote both sides
//! of every market around the book, and now and then take liquidity, so
//! trades print and the chart moves. Their mid follows the book (the middle
//! of the best bid and ask; the last trade, or the one side there is, when a
//! side is empty) and wanders a little from it; a quote goes to the side
//! with fewer levels, and never crosses the other side's best price, so a
//! person's resting order is not swept by every "passive" quote and both
//! sides stay populated. Bots go through the same path as people
//! (reservations, the market tasks, settlement), so they can never do what a
//! trader could not; an order refused for funds is skipped.

use std::collections::VecDeque;
use std::time::Duration;

use orderbook::sim::Rng;
use orderbook::{AccountId, Book, Market, OrderId, OrderTerms, OrderType, Side};
use rust_decimal::Decimal;

use super::exchange::Exchange;

/// How many bots trade.
pub const BOTS: usize = 6;
/// Orders a bot leaves resting per market before it cancels its oldest.
const RESTING: usize = 8;
/// Levels per side the bots look at to choose the side to quote.
const LEVELS: usize = 12;

/// Where each market's price starts when it has never traded.
fn opening_price(market: &Market) -> Decimal {
    match market.spec.base.as_str() {
        "BTC" => Decimal::from(30_000),
        "ETH" => Decimal::from(2_000),
        _ => Decimal::from(100),
    }
}

/// Starts the bots; they trade until the process ends or the task is
/// aborted.
pub fn start(
    exchange: Exchange,
    markets: Vec<Market>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut bots = Vec::new();
        for i in 1..=BOTS {
            match bot_account(&exchange, &format!("bot-{i}")).await {
                Ok(id) => bots.push(id),
                Err(e) => tracing::warn!("simulator bot {i} could not start: {e}"),
            }
        }
        if bots.is_empty() {
            return;
        }
        let mut rng = Rng::new(super::clock::now_ms());
        let mut mids: Vec<Decimal> = markets
            .iter()
            .map(|m| {
                exchange
                    .ticker(m.symbol.as_str())
                    .and_then(|t| t.last)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| opening_price(m))
            })
            .collect();
        let mut resting: Vec<VecDeque<(AccountId, OrderId)>> = vec![VecDeque::new(); markets.len()];
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            for (i, market) in markets.iter().enumerate() {
                let bot = bots[rng.below(bots.len() as u64) as usize];
                step(
                    &exchange,
                    market,
                    bot,
                    &mut mids[i],
                    &mut resting[i],
                    &mut rng,
                )
                .await;
            }
        }
    })
}

/// The bot's account: opened (and funded) on first use, found afterwards.
async fn bot_account(exchange: &Exchange, name: &str) -> Result<AccountId, super::ExchangeError> {
    if let Some(id) = exchange.account_id(name) {
        return Ok(id);
    }
    // Bots never log in: their password is random and thrown away.
    let token = exchange
        .sign_up(name, &super::credentials::new_token())
        .await?;
    let id = exchange
        .use_session(&token)
        .ok_or(super::ExchangeError::Unavailable)?;
    while exchange.claim_faucet(id).await.is_ok() {}
    Ok(id)
}

async fn step(
    exchange: &Exchange,
    market: &Market,
    bot: AccountId,
    mid: &mut Decimal,
    resting: &mut VecDeque<(AccountId, OrderId)>,
    rng: &mut Rng,
) {
    let symbol = market.symbol.as_str();
    let tick = market.spec.tick_size;
    let Some(book) = exchange.book(symbol) else {
        return;
    };
    let last = exchange
        .ticker(symbol)
        .and_then(|t| t.last)
        .and_then(|p| p.parse().ok());
    // Around the book, wandering by up to ±0.05 % from it.
    let drift = Decimal::from(rng.below(11) as i64 - 5) / Decimal::from(10_000);
    let around = book_mid(&book, last).unwrap_or(*mid);
    *mid = (around * (Decimal::ONE + drift) / tick).round() * tick;
    let depth = book.depth(LEVELS);
    let side = match depth.bids.len().cmp(&depth.asks.len()) {
        std::cmp::Ordering::Less => Side::Buy,
        std::cmp::Ordering::Greater => Side::Sell,
        std::cmp::Ordering::Equal if rng.chance(50) => Side::Buy,
        std::cmp::Ordering::Equal => Side::Sell,
    };
    let lots = 1 + rng.below(40);
    let quantity = market.spec.min_quantity * Decimal::from(lots);
    let order = if rng.chance(25) {
        // Take liquidity.
        OrderTerms {
            side,
            order_type: OrderType::Market,
            price: None,
            quantity: Some(quantity),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: Default::default(),
            trigger: None,
        }
    } else {
        // Quote a few ticks away from the mid, on the passive side.
        let away = tick
            * Decimal::from(1 + rng.below(40))
            * (*mid / Decimal::from(1_000)).round().max(Decimal::ONE);
        // Passive: `away` (at least a tick) from the mid, or from the other
        // side's best price when the mid has come to or past it.
        let price = match side {
            Side::Buy => match book.best_ask() {
                Some(ask) => (*mid).min(ask.price) - away,
                None => *mid - away,
            },
            Side::Sell => match book.best_bid() {
                Some(bid) => (*mid).max(bid.price) + away,
                None => *mid + away,
            },
        };
        if price <= Decimal::ZERO {
            return;
        }
        OrderTerms {
            side,
            order_type: OrderType::Limit,
            price: Some(price),
            quantity: Some(quantity),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: Default::default(),
            trigger: None,
        }
    };
    let limit = order.order_type == OrderType::Limit;
    if let Ok(outcome) = exchange.place(bot, symbol, order).await
        && limit
    {
        resting.push_back((bot, outcome.order_id));
    }
    while resting.len() > RESTING * BOTS {
        if let Some((owner, id)) = resting.pop_front() {
            // Already filled or cancelled is fine.
            let _ = exchange.cancel(owner, symbol, id).await;
        }
    }
}

/// The price the bots quote around: the middle of the best bid and ask;
/// with one side empty, the last trade (or that side's best price); with
/// an empty book, the last trade. `None` for an empty book that never
/// traded.
fn book_mid(book: &Book, last: Option<Decimal>) -> Option<Decimal> {
    match (book.best_bid(), book.best_ask()) {
        (Some(bid), Some(ask)) => Some((bid.price + ask.price) / Decimal::TWO),
        (Some(one), None) | (None, Some(one)) => Some(last.unwrap_or(one.price)),
        (None, None) => last,
    }
}
