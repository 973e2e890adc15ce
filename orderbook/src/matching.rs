//! Matching: a taker walked against the resting orders of the other side
//! in price-time priority, and the events that describe how each order
//! ends. Like deciding it reads the book and changes nothing.

use crate::book::Book;
use crate::event::{Event, OrderCancelled, OrderFilled, TradeExecuted};
use crate::ladder::Node;
use crate::order::{AccountId, OrderId, OrderType, SelfTradePrevention, Side, Timestamp};
use crate::reason::CancelReason;
use crate::stops::HeldStop;

/// How much the incoming order still wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Base quantity in lots.
    Lots(u64),
    /// Quote amount in notional units (one lot at one tick).
    Quote(u128),
}

/// The incoming (taker) side of a match.
pub(crate) struct Taker {
    pub(crate) id: OrderId,
    pub(crate) account: AccountId,
    pub(crate) side: Side,
    /// Worst acceptable price in ticks; `None` for market orders.
    pub(crate) limit: Option<u64>,
    pub(crate) stp: SelfTradePrevention,
    pub(crate) at: Timestamp,
}

/// Why matching stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Filled,
    /// No more liquidity at acceptable prices (or not enough quote for a lot).
    Exhausted,
    /// Met an order of its own account with cancel-taker or cancel-both.
    SelfTrade,
}

impl Book {
    /// Walks resting orders on the other side in price-time priority and
    /// matches the taker against them. With `out` it writes the trades (and
    /// maker fills and self-trade cancels) it makes; without, it is a dry run
    /// for fill-or-kill. Returns why it stopped and what was left unfilled.
    pub(crate) fn cross(
        &self,
        t: &Taker,
        mut want: Want,
        mut out: Option<&mut Vec<Event>>,
    ) -> (Stop, Want) {
        let m = &self.market;
        let mut trade_id = self.last_trade_id;
        for level in self.ladder.side(t.side.opposite()).iter_best_first() {
            let acceptable = match (t.limit, t.side) {
                (None, _) => true,
                (Some(limit), Side::Buy) => level.price <= limit,
                (Some(limit), Side::Sell) => level.price >= limit,
            };
            if !acceptable {
                break;
            }
            // Every trade at this level is at its price.
            let price = m.price(level.price);
            for (_, maker) in self.ladder.queue(level) {
                if maker.account == t.account {
                    let cancel_maker = t.stp != SelfTradePrevention::CancelTaker;
                    if cancel_maker && let Some(out) = out.as_deref_mut() {
                        out.push(self.maker_cancelled(maker, t.at));
                    }
                    if t.stp == SelfTradePrevention::CancelMaker {
                        continue;
                    }
                    return (Stop::SelfTrade, want);
                }
                let lots = match want {
                    Want::Lots(l) => l.min(maker.remaining),
                    Want::Quote(q) => {
                        let affordable = q / u128::from(level.price);
                        (affordable.min(u128::from(maker.remaining))) as u64
                    }
                };
                if lots == 0 {
                    return (Stop::Exhausted, want);
                }
                want = match want {
                    Want::Lots(l) => Want::Lots(l - lots),
                    Want::Quote(q) => Want::Quote(q - u128::from(level.price) * u128::from(lots)),
                };
                if let Some(out) = out.as_deref_mut() {
                    trade_id += 1;
                    out.push(Event::TradeExecuted(TradeExecuted {
                        symbol: m.symbol,
                        trade_id,
                        price,
                        quantity: m.quantity(lots),
                        maker_order_id: maker.id,
                        taker_order_id: t.id,
                        maker_account: maker.account,
                        taker_account: t.account,
                        taker_side: t.side,
                        executed_at: t.at,
                        fees: None,
                    }));
                    if lots == maker.remaining {
                        out.push(Event::OrderFilled(OrderFilled {
                            symbol: m.symbol,
                            order_id: maker.id,
                            account: maker.account,
                            side: maker.side,
                            at: t.at,
                        }));
                    }
                }
                if matches!(want, Want::Lots(0) | Want::Quote(0)) {
                    return (Stop::Filled, want);
                }
                // A quote-sized order that could not afford all of this maker
                // stops here: a worse price may fit another lot, but taking
                // it would jump the queue ahead of this maker.
                if matches!(want, Want::Quote(_)) && lots < maker.remaining {
                    return (Stop::Exhausted, want);
                }
            }
        }
        (Stop::Exhausted, want)
    }

    pub(crate) fn filled(&self, t: &Taker) -> Event {
        Event::OrderFilled(OrderFilled {
            symbol: self.market.symbol,
            order_id: t.id,
            account: t.account,
            side: t.side,
            at: t.at,
        })
    }

    pub(crate) fn cancelled(
        &self,
        t: &Taker,
        limit: Option<u64>,
        left: Want,
        reason: CancelReason,
    ) -> Event {
        let m = &self.market;
        Event::OrderCancelled(OrderCancelled {
            symbol: m.symbol,
            order_id: t.id,
            account: t.account,
            side: t.side,
            price: limit.map(|p| m.price(p)),
            remaining_quantity: match left {
                Want::Lots(l) => Some(m.quantity(l)),
                Want::Quote(_) => None,
            },
            remaining_quote_amount: match left {
                Want::Quote(u) => Some(m.quote_amount(u)),
                Want::Lots(_) => None,
            },
            reason,
            at: t.at,
        })
    }

    pub(crate) fn maker_cancelled(&self, n: &Node, at: Timestamp) -> Event {
        let m = &self.market;
        Event::OrderCancelled(OrderCancelled {
            symbol: m.symbol,
            order_id: n.id,
            account: n.account,
            side: n.side,
            price: Some(m.price(n.price)),
            remaining_quantity: Some(m.quantity(n.remaining)),
            remaining_quote_amount: None,
            reason: CancelReason::SelfTradePrevention,
            at,
        })
    }
}

/// A held order as the taker it enters as at `at`, and all it wants.
pub(crate) fn held_taker(h: &HeldStop, at: Timestamp) -> (Taker, Want) {
    let n = &h.node;
    let want = if n.quote_sized {
        Want::Quote(n.quote_remaining)
    } else {
        Want::Lots(n.remaining)
    };
    let taker = Taker {
        id: n.id,
        account: n.account,
        side: n.side,
        limit: (n.order_type == OrderType::Limit).then_some(n.price),
        stp: n.stp,
        at,
    };
    (taker, want)
}
