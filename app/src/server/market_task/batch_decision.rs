//! One batch decided: each request the queue holds goes through the book
//! and then the ledger's checks (the caps, the funds, what earlier
//! decisions of the batch already took), gets its fees stamped in, and is
//! cut to fit one append. A placement refused for what it asks (the book's
//! rules, the funds, a cap) goes into the same append as an
//! `OrderRefused`, so a refusal costs no write of its own. The matching is
//! the book's; this is the stage before and around it, as exchange-core
//! keeps risk apart from matching.

use std::collections::VecDeque;

use accounts::Ledger;
use eventstore::EventData;
use orderbook::{
    AccountId, AmendOrder, CancelOrder, Command, Event, Market, OrderId, OrderRefused, PlaceOrder,
    RejectReason,
};
use rust_decimal::Decimal;

use super::{
    Action, Batch, Decided, EVENT_OVERHEAD, MAX_APPEND_BYTES, MAX_BATCH, MarketRequest, MarketTask,
    State,
};
use crate::server::accounts_task::InFlight;
use crate::server::clock::now_micros;
use crate::server::exchange_error::ExchangeError;
use crate::server::streams::market_event_payload;

impl MarketTask {
    /// Decides requests from the front of the queue against the book and
    /// the ledger until the batch is full or the next would not fit one
    /// append; a refused placement is kept in the batch as its
    /// `OrderRefused`, any other refusal is answered at once. Holds the
    /// ledger throughout, so no other market decides on what this batch
    /// spends.
    pub(super) fn decide_batch(
        &self,
        state: &mut State,
        queue: &mut VecDeque<MarketRequest>,
    ) -> Batch {
        let mut batch = Batch::default();
        let in_flight = self.ledger.in_flight();
        self.ledger.write(|ledger| {
            while let Some(request) = queue.pop_front() {
                let at = now_micros();
                let command = self.command(state, &request, at);
                match self.decide(state, ledger, &in_flight, &request, command.as_ref(), at) {
                    Err(e) => {
                        let Some(refusal) = self.refusal(&request, &e, at) else {
                            let _ = request.reply.send(Err(e));
                            continue;
                        };
                        let (data, n) = market_event_payload(&refusal);
                        let bytes = n + EVENT_OVERHEAD;
                        if batch.bytes + bytes > MAX_APPEND_BYTES {
                            queue.push_front(request);
                            break;
                        }
                        let start = batch.events.len();
                        fold_in(state, ledger, &self.market, &mut batch, refusal);
                        batch.data.push(data);
                        batch.bytes += bytes;
                        batch.decided.push(Decided {
                            request,
                            order_id: 0,
                            events: start..batch.events.len(),
                            refused: Some(e),
                        });
                        if batch.decided.len() >= MAX_BATCH {
                            break;
                        }
                    }
                    Ok(mut events) => {
                        let payloads: Vec<(EventData, usize)> = events
                            .iter_mut()
                            .map(|e| {
                                self.fees.stamp(e);
                                market_event_payload(e)
                            })
                            .collect();
                        let bytes: usize = payloads.iter().map(|(_, n)| n + EVENT_OVERHEAD).sum();
                        if bytes > MAX_APPEND_BYTES {
                            let _ = request
                                .reply
                                .send(Err(ExchangeError::TooLarge(events.len())));
                            continue;
                        }
                        if batch.bytes + bytes > MAX_APPEND_BYTES {
                            // The next append takes it, decided again then.
                            queue.push_front(request);
                            break;
                        }
                        let order_id = command.as_ref().map_or(0, Command::order_id);
                        let before = available(ledger, &self.market, &events);
                        let start = batch.events.len();
                        for e in events {
                            fold_in(state, ledger, &self.market, &mut batch, e);
                        }
                        for (key, was) in before {
                            let now = ledger
                                .account(key.0)
                                .map_or(Decimal::ZERO, |a| a.balance(&key.1).available());
                            if now > was {
                                *batch.credits.entry(key).or_default() += now - was;
                            }
                        }
                        batch.data.extend(payloads.into_iter().map(|(d, _)| d));
                        batch.bytes += bytes;
                        batch.decided.push(Decided {
                            request,
                            order_id,
                            events: start..batch.events.len(),
                            refused: None,
                        });
                        if batch.decided.len() >= MAX_BATCH {
                            break;
                        }
                    }
                }
            }
        });
        in_flight.add(&batch.credits);
        batch
    }

    /// The record of a placement refused for what it asks (not for a
    /// fault, which is no refusal of the order): what the trader's history
    /// keeps.
    fn refusal(&self, request: &MarketRequest, why: &ExchangeError, at: u64) -> Option<Event> {
        let Action::Place(terms, client_order_id) = &request.action else {
            return None;
        };
        why.refuses_order().then(|| {
            Event::OrderRefused(Box::new(OrderRefused {
                symbol: self.market.symbol,
                account: request.account,
                terms: *terms,
                client_order_id: client_order_id.clone(),
                reason: why.to_string(),
                at,
            }))
        })
    }

    /// The book's command a request asks for, with the next order id and
    /// the time; none for a cancel-all, which is decided order by order.
    fn command(&self, state: &State, request: &MarketRequest, at: u64) -> Option<Command> {
        let symbol = self.market.symbol;
        let account = request.account;
        let command = match &request.action {
            Action::Place(terms, client_order_id) => Command::Place(
                PlaceOrder::new(symbol, state.book.last_order_id() + 1, account, *terms, at)
                    .with_client_order_id(client_order_id.clone()),
            ),
            Action::Cancel(order_id) => Command::Cancel(CancelOrder {
                symbol,
                order_id: *order_id,
                account,
                at,
            }),
            Action::Amend {
                order_id,
                price,
                quantity,
                trigger_price,
            } => Command::Amend(AmendOrder {
                symbol,
                order_id: *order_id,
                account,
                price: *price,
                quantity: *quantity,
                at,
                trigger_price: *trigger_price,
            }),
            Action::CancelAll => return None,
        };
        Some(command)
    }

    /// Decides one request on the book as the batch has left it, and
    /// checks it against the ledger: the caps, then the funds. Changes
    /// nothing; answers the events to write, or why it is refused.
    fn decide(
        &self,
        state: &State,
        ledger: &Ledger,
        in_flight: &InFlight,
        request: &MarketRequest,
        command: Option<&Command>,
        at: u64,
    ) -> Result<Vec<Event>, ExchangeError> {
        let Some(command) = command else {
            return Ok(self.cancel_all(state, request.account, at));
        };
        let account = request.account;
        if let Action::Place(o, _) = &request.action {
            let open = ledger.account(account).map(|a| &a.reservations);
            let count = open.map_or(0, |r| r.len());
            if count >= self.caps.max_open_orders {
                return Err(ExchangeError::TooManyOpenOrders(count));
            }
            let waiting = open.map_or(0, |r| r.values().filter(|r| r.waiting).count());
            if o.trigger.is_some() && waiting >= self.caps.max_stop_orders {
                return Err(ExchangeError::TooManyStopOrders(waiting));
            }
        }
        let decision = state.book.decide(command);
        if let Some(Event::OrderRejected(r)) = decision.first() {
            return Err(match (r.reason, &request.action) {
                // Said with the market and the side the trader sees.
                (RejectReason::NoLiquidity, Action::Place(terms, _)) => {
                    ExchangeError::NoLiquidity {
                        symbol: self.symbol().to_string(),
                        side: terms.side,
                    }
                }
                (reason, _) => ExchangeError::from(reason),
            });
        }
        if let Some((who, asset, amount)) = ledger.needs(&self.market.spec, command, &decision) {
            let unusable = in_flight.credit(who, &asset);
            ledger.check_available(who, &asset, amount, unusable)?;
        }
        Ok(decision)
    }

    /// Every open order of the account in this market cancelled, as one
    /// decision on the book as it is now.
    fn cancel_all(&self, state: &State, account: AccountId, at: u64) -> Vec<Event> {
        let mut book = state.book.clone();
        let mut ids: Vec<OrderId> = book
            .resting_orders()
            .iter()
            .filter(|o| o.account == account)
            .map(|o| o.order_id)
            .collect();
        ids.extend(
            book.stop_orders()
                .iter()
                .filter(|o| o.account == account)
                .map(|o| o.order_id),
        );
        ids.sort_unstable();
        let mut events = Vec::new();
        for order_id in ids {
            let cancel = Command::Cancel(CancelOrder {
                symbol: self.market.symbol,
                order_id,
                account,
                at,
            });
            for e in book.decide(&cancel) {
                if !matches!(e, Event::OrderRejected(_)) {
                    book.apply(&e);
                    events.push(e);
                }
            }
        }
        events
    }
}

/// Takes a decided event into the batch: applied to the book and folded
/// into the ledger at the revision it will have in the stream.
fn fold_in(state: &mut State, ledger: &mut Ledger, market: &Market, batch: &mut Batch, e: Event) {
    let revision = state.revision + batch.events.len() as u64;
    state.book.apply(&e);
    if let Err(gap) = ledger.apply_market(&market.spec, revision, &e) {
        // sync_ledger ran just before: cannot be.
        tracing::error!(symbol = %market.symbol, "{gap}");
    }
    batch.events.push(e);
}

/// The available balance of every account the events name, in the
/// market's two assets, before they are folded in.
fn available(
    ledger: &Ledger,
    market: &Market,
    events: &[Event],
) -> Vec<((AccountId, String), Decimal)> {
    let mut accounts: Vec<AccountId> = events.iter().flat_map(Event::accounts).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let spec = &market.spec;
    accounts
        .into_iter()
        .flat_map(|a| [(a, spec.base.clone()), (a, spec.quote.clone())])
        .map(|(a, asset)| {
            let now = ledger
                .account(a)
                .map_or(Decimal::ZERO, |acc| acc.balance(&asset).available());
            ((a, asset), now)
        })
        .collect()
}
