//! One browser's live feed, speaking the `FeedRequest`/`FeedMessage`
//! protocol of `api`: a subscription of its own inside the server's one
//! store subscription (a [`TailReader`] of the watched market's stream,
//! from the position the browser asks for), the depth of the book the
//! market task publishes, and heartbeats.
//!
//! The feed is a stream its socket polls, not a task: it takes events only
//! as the socket takes messages, so it never makes the tail wait, and a
//! feed that falls behind the tail's window reads the store by itself until
//! it catches up (see `live_tail`). A live trade costs each viewer one wake
//! of its socket's task, which finds the trade in the window. A page
//! that resumes from further back than [`FeedLimits::replay_bytes`] is sent
//! a fresh snapshot instead of every trade since: its chart and tape end up
//! the same, and a crowd of pages waking from sleep does not turn into a
//! crowd of long store reads that slow every live viewer. Each resume also
//! spends [`RESUME_WEIGHT`] of its address's request weight ([`Resumes`]);
//! an address over it gets the snapshot too, so one client's many sockets
//! cannot turn into many long reads either. Depth and
//! heartbeats follow the market's published depth updates
//! (`depth_updates`): worked out once for all viewers, at most every
//! [`DEPTH_EVERY`](super::depth_updates::DEPTH_EVERY) and at least every
//! [`HEARTBEAT`](super::depth_updates::HEARTBEAT); a feed sends the depth
//! only when it is not the one it sent last.
//! The feed ends as soon as the browser goes away or breaks a limit
//! ([`FeedLimits`]), when it is told why.
//!
//! A page with a session also asks for its account (`FeedRequest::Account`):
//! the account is the one whose session cookie came with the socket's
//! upgrade, and nobody else's. The feed then follows that account's stream
//! with a second reader: each fill settled is sent as it comes (from the
//! position the page asks for, so a reconnect misses none), and the
//! account's view whenever it changed. The view is looked at again after
//! the account's events and with each depth update of the watched market
//! (an order resting there changes with market events that need no
//! account event). The view is built again only when the account or one
//! of its open orders has moved since (`Exchange::view_since`), not when
//! others' orders move the book.
//! The session is checked each time: a socket whose session ended is told
//! so and stops following.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use leptos::prelude::ServerFnError;
use leptos::server_fn::BoxedStream;
use tokio::sync::watch;

use accounts::AccountEvent;
use orderbook::{AccountId, Event};

use super::depth_updates::DepthUpdate;
use super::exchange::Exchange;
use super::feed_limits::{FeedLimits, SocketSlot, WatchRate};
use super::live_tail::{Progress, Streams, TailStream};
use super::request_limits::{RESUME_WEIGHT, RequestLimits};
use super::streams::{Decoded, StreamError, account_stream, market_stream};
use super::views::fill_view;
use super::{AccountRead, ViewInputs};
use crate::api::{
    AccountView, DepthView, FeedMessage, FeedPosition, FeedRequest, FillView, TickerView,
};
use crate::shared_json::SharedJson;

/// The longest symbol a `Watch` may name.
pub const MAX_SYMBOL: usize = 32;

/// A browser's feed, as the stream of messages its socket sends. It does
/// its work as the socket takes messages: no task of its own, and nothing
/// queued beyond what the socket holds, so a browser that does not read
/// holds nobody up and falls behind by itself.
pub type FeedStream = BoxStream<'static, FeedMessage>;

/// The most messages one frame carries.
const FRAME_MESSAGES: usize = 64;

/// A feed as its socket sends it: the messages ready at once go out
/// together, as one websocket message (one write), not one each, and the
/// first waits `gather` for others to join it (see
/// [`FeedLimits::gather_ms`]). A depth publication is a depth and a
/// heartbeat; a trade is mostly followed by the depth it changed.
pub fn frames(
    feed: FeedStream,
    gather: Duration,
) -> BoxStream<'static, Result<Vec<FeedMessage>, ServerFnError>> {
    futures::stream::unfold(feed.fuse(), move |mut feed| async move {
        let first = feed.next().await?;
        let mut frame = vec![first];
        if !gather.is_zero() {
            tokio::time::sleep(gather).await;
        }
        // A feed's messages are made as they are polled for; what is not
        // ready now waits for the next frame (the feed keeps it).
        while frame.len() < FRAME_MESSAGES {
            match feed.next().now_or_never() {
                Some(Some(message)) => frame.push(message),
                _ => break,
            }
        }
        Some((Ok(frame), feed))
    })
    .boxed()
}

/// Whose request weight a socket's resumes spend: its address's.
pub struct Resumes {
    pub limits: RequestLimits,
    pub address: std::net::IpAddr,
}

/// The feed for one socket. `slot` is the socket's place among its
/// address's sockets, held as long as the feed lives; `session` the session
/// token that came with the socket's upgrade, if any; `resumes` what its
/// resumes spend (none: they are not paced).
pub fn open(
    exchange: Exchange,
    requests: BoxedStream<FeedRequest, ServerFnError>,
    limits: FeedLimits,
    slot: Option<SocketSlot>,
    session: Option<String>,
    resumes: Option<Resumes>,
) -> FeedStream {
    let viewer = Viewer {
        exchange,
        requests,
        session,
        resumes,
        trader: None,
        rate: WatchRate::new(&limits, Instant::now()),
        limits,
        watch: None,
        events: None,
        account_events: None,
        updates: None,
        sent_depth: None,
        pending: VecDeque::new(),
        ending: false,
        _slot: slot,
    };
    futures::stream::unfold(viewer, |mut v| async move {
        let message = v.next().await?;
        Some((message, v))
    })
    .boxed()
}

/// A feed that only refuses: says why and closes.
pub fn refuse(why: String) -> FeedStream {
    futures::stream::iter([FeedMessage::Refused(why)]).boxed()
}

/// What the feed is watching now.
struct Watch {
    symbol: String,
    /// The last position the browser has been given (or was told about).
    position: Option<FeedPosition>,
}

/// The next events of the watched market (never, while none is watched).
async fn next_events(events: &mut Option<TailStream>) -> Result<Progress, StreamError> {
    match events.as_mut() {
        Some(events) => match events.next().await {
            Some(p) => p,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Resolves when the watched market publishes a depth update.
async fn published(updates: &mut Option<watch::Receiver<Arc<DepthUpdate>>>) {
    if let Some(u) = updates.as_mut()
        && u.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// What the browser is told of a message the socket or the decoder could
/// not read: the reason itself, without `server_fn`'s framing words.
fn unreadable(e: ServerFnError) -> String {
    match e {
        ServerFnError::Request(why) => why,
        ServerFnError::Deserialization(why) | ServerFnError::Args(why) => {
            format!("unreadable request ({why}); closing this socket")
        }
        other => format!("{other}; closing this socket"),
    }
}

/// Why a request ends the feed.
fn check(request: &FeedRequest, rate: &mut WatchRate) -> Result<(), String> {
    if let FeedRequest::Watch { symbol, .. } = request
        && symbol.len() > MAX_SYMBOL
    {
        return Err(format!(
            "a market symbol has at most {MAX_SYMBOL} bytes; closing this socket"
        ));
    }
    if !rate.allow(Instant::now()) {
        return Err("too many market switches on this socket; closing it".into());
    }
    Ok(())
}

/// One browser's subscription: what it watches, where it stands, and the
/// messages it is to get next, in order. While anything waits in `pending`
/// no more events are taken, so it holds one page at most.
struct Viewer {
    exchange: Exchange,
    requests: BoxedStream<FeedRequest, ServerFnError>,
    limits: FeedLimits,
    rate: WatchRate,
    watch: Option<Watch>,
    events: Option<TailStream>,
    /// The followed account's stream.
    account_events: Option<TailStream>,
    updates: Option<watch::Receiver<Arc<DepthUpdate>>>,
    /// The depth the browser was sent last (or has in its snapshot).
    sent_depth: Option<SharedJson<DepthView>>,
    pending: VecDeque<FeedMessage>,
    /// Set once the feed has said why it ends: it ends when that is sent.
    ending: bool,
    /// The session token of the socket's upgrade.
    session: Option<String>,
    resumes: Option<Resumes>,
    /// The account followed, once the page asked for it.
    trader: Option<Trader>,
    /// Held as long as the feed lives.
    _slot: Option<SocketSlot>,
}

impl Viewer {
    /// The next message for the browser; `None` ends the feed.
    async fn next(&mut self) -> Option<FeedMessage> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            if self.ending {
                return None;
            }
            // In this order when several are ready: a request, then a trade
            // before depth and heartbeats. (What was taken for a market
            // before a switch still goes out; the page drops it.)
            tokio::select! {
                biased;
                request = self.requests.next() => match request {
                    Some(Ok(request)) => self.request(request),
                    Some(Err(e)) => self.end(unreadable(e)),
                    // The browser closed its half.
                    None => return None,
                },
                progress = next_events(&mut self.events) => self.progress(progress).await,
                progress = next_events(&mut self.account_events) => self.account_progress(progress).await,
                () = published(&mut self.updates) => self.published(),
            }
        }
    }

    /// Says why the feed ends, and ends it.
    fn end(&mut self, why: String) {
        self.pending.clear();
        self.pending.push_back(FeedMessage::Refused(why));
        self.ending = true;
    }

    fn request(&mut self, request: FeedRequest) {
        if let Err(why) = check(&request, &mut self.rate) {
            return self.end(why);
        }
        let (symbol, from) = match request {
            FeedRequest::Watch { symbol, from } => (symbol, from),
            FeedRequest::Account { from } => return self.follow_account(from),
        };
        // Too far back to replay, or over the address's pace: start over
        // from a snapshot.
        let from = from.filter(|p| self.may_resume(*p));
        self.watch = None;
        self.events = None;
        self.updates = self.exchange.depth_updates(&symbol);
        let Some(published) = self.updates.as_mut() else {
            let refused = FeedMessage::Refused(format!("there is no market {symbol}"));
            self.pending.push_back(refused);
            return;
        };
        let tail = self.exchange.tail();
        let position = match from {
            Some(p) => Some(p),
            None => {
                let Some(snapshot) = self.exchange.snapshot(&symbol) else {
                    return self.end(format!("there is no market {symbol}"));
                };
                let position = snapshot.position;
                self.pending
                    .push_back(FeedMessage::Snapshot(Box::new(snapshot)));
                position
            }
        };
        let reader = tail.reader(Streams::Market(market_stream(&symbol)), position);
        self.events = Some(reader.into_stream());
        let w = self.watch.insert(Watch { symbol, position });
        // Say at once that the link is up and where it stands.
        let update = published.borrow().clone();
        self.pending.push_back(heartbeat_of(w, &update.ticker));
        if from.is_some() {
            // A resumed page may have missed depth changes.
            self.sent_depth = None;
            published.mark_changed();
        } else {
            self.sent_depth = Some(update.depth.clone());
        }
    }

    async fn progress(&mut self, progress: Result<Progress, StreamError>) {
        let Some(w) = self.watch.as_mut() else { return };
        match progress {
            Ok(progress) => {
                for e in &progress.events {
                    if let Some(trade) = &e.trade {
                        self.pending.push_back(FeedMessage::Trade {
                            symbol: w.symbol.clone(),
                            position: e.position,
                            trade: trade.clone(),
                        });
                    }
                }
                w.position = progress.position.or(w.position);
            }
            Err(e) => {
                // The store could not be read: the reader tries again.
                tracing::debug!("a feed's read of the store failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    fn published(&mut self) {
        let (Some(w), Some(u)) = (self.watch.as_ref(), self.updates.as_mut()) else {
            return;
        };
        let update = u.borrow_and_update().clone();
        let sent = self.sent_depth.as_ref();
        if !sent.is_some_and(|d| SharedJson::ptr_eq(d, &update.depth)) {
            let depth = update.depth.clone();
            let symbol = w.symbol.clone();
            self.pending.push_back(FeedMessage::Depth {
                symbol,
                depth: depth.clone(),
            });
            self.sent_depth = Some(depth);
        }
        self.pending.push_back(heartbeat_of(w, &update.ticker));
        self.refresh_account();
    }

    /// Whether a resume from `from` is replayed: within the replay bound,
    /// and (spending its weight) within the address's pace.
    fn may_resume(&self, from: FeedPosition) -> bool {
        self.exchange.tail().bytes_behind(from) <= self.limits.replay_bytes
            && self.resumes.as_ref().is_none_or(|r| {
                let spent = r.limits.costly(r.address, RESUME_WEIGHT, Instant::now());
                spent.is_ok()
            })
    }

    /// Follows the account of the socket's session from `from` (every fill
    /// after it), or from now; or says there is none.
    fn follow_account(&mut self, from: Option<FeedPosition>) {
        self.account_events = None;
        self.trader = None;
        let Some(account) = self.session_account() else {
            return self.pending.push_back(NO_ACCOUNT);
        };
        let tail = self.exchange.tail();
        // From too far back (or over the pace), the view alone: its list
        // of fills has them.
        let from = from.filter(|p| self.may_resume(*p));
        let position = from.or_else(|| tail.reached());
        let streams = Streams::AccountAndMarkets(account_stream(account));
        let reader = tail.reader(streams, position);
        self.account_events = Some(reader.into_stream());
        self.trader = Some(Trader {
            account,
            position,
            sent: None,
            inputs: None,
            told: HashSet::new(),
        });
        self.refresh_account();
    }

    /// The account of the socket's session, while the session lasts.
    fn session_account(&self) -> Option<AccountId> {
        self.exchange.use_session(self.session.as_deref()?)
    }

    async fn account_progress(&mut self, progress: Result<Progress, StreamError>) {
        let Some(t) = self.trader.as_mut() else {
            return;
        };
        match progress {
            Ok(progress) => {
                for e in &progress.events {
                    // A fill is the account's side of a trade with its fees
                    // (or, in a log from before fees were in trades, the
                    // ledger event that settled it).
                    let fill = match &e.event {
                        Decoded::Account(AccountEvent::TradeSettled(settled)) => {
                            Some(settled.clone())
                        }
                        Decoded::Book(Event::TradeExecuted(trade)) if trade.fees.is_some() => self
                            .exchange
                            .market_spec(trade.symbol.as_str())
                            .and_then(|spec| {
                                let [maker, taker] = accounts::fills(&spec, e.revision, trade);
                                [maker, taker].into_iter().find(|f| f.account == t.account)
                            }),
                        _ => None,
                    };
                    if let Some(fill) = fill.filter(|f| f.account == t.account) {
                        let fill = fill_view(&fill);
                        t.told.insert(fill_key(&fill));
                        self.pending.push_back(FeedMessage::Fill {
                            position: e.position,
                            fill: Box::new(fill),
                        });
                    }
                }
                t.position = progress.position.or(t.position);
                self.refresh_account();
            }
            Err(e) => {
                tracing::debug!("a feed's read of an account failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    /// Sends the followed account's view when it changed; stops following
    /// (and says so) when the session has ended.
    fn refresh_account(&mut self) {
        let Some(account) = self.trader.as_ref().map(|t| t.account) else {
            return;
        };
        if self.session_account() != Some(account) {
            self.trader = None;
            self.account_events = None;
            return self.pending.push_back(NO_ACCOUNT);
        }
        let Some(t) = self.trader.as_mut() else {
            return;
        };
        let (inputs, view) = match self.exchange.view_since(account, t.inputs.as_ref()) {
            AccountRead::Changed(inputs, view) => (inputs, *view),
            AccountRead::Unchanged | AccountRead::Unknown => return,
        };
        if t.sent.as_ref() == Some(&view) {
            t.inputs = Some(inputs);
            return;
        }
        // The ledger takes a fill in when its trade is decided, the tail
        // brings the trade a moment later: a view that lists a fill the
        // page has not been sent waits for that fill's message, which
        // comes first (the page shows a notice only for a fill its list
        // does not have). The first view is what the page starts from.
        let fills = view.fills.iter().map(fill_key);
        if t.sent.is_some() && fills.clone().any(|k| !t.told.contains(&k)) {
            return;
        }
        // A fill sent on its own may reach the ledger only later (one
        // another server wrote): what was told stays told.
        t.told.extend(fills);
        if t.told.len() > TOLD_KEPT {
            let shown: HashSet<FillKey> = view.fills.iter().map(fill_key).collect();
            t.told.retain(|k| shown.contains(k));
        }
        let message = match t.sent.as_ref().and_then(|sent| view.changes_since(sent)) {
            Some(changes) => FeedMessage::AccountChanged {
                changes: Box::new(changes),
                position: t.position,
            },
            None => FeedMessage::Account {
                view: Some(Box::new(view.clone())),
                position: t.position,
            },
        };
        t.sent = Some(view);
        t.inputs = Some(inputs);
        self.pending.push_back(message);
    }
}

/// What a socket with no session (or whose session ended) is told when it
/// asks for its account.
const NO_ACCOUNT: FeedMessage = FeedMessage::Account {
    view: None,
    position: None,
};

/// The account a feed follows, and what it was sent of it.
struct Trader {
    account: AccountId,
    /// The position of the account's stream reached.
    position: Option<FeedPosition>,
    /// The view sent last.
    sent: Option<AccountView>,
    /// What the view sent last (or found the same as it) was made from:
    /// while they stay the same, no view is built. A view held back for
    /// a fill's message leaves them, so the next look builds it again.
    inputs: Option<ViewInputs>,
    /// The fills the page has been told of: those of the view sent last
    /// and each sent on its own since.
    told: HashSet<FillKey>,
}

/// How many fills a feed remembers telling its page of, before it keeps
/// only those of the view it sent last (a view lists the last few).
const TOLD_KEPT: usize = 1024;

/// A fill, as one trade of one order.
type FillKey = (String, u64, u64);

fn fill_key(f: &FillView) -> FillKey {
    (f.symbol.clone(), f.trade_id, f.order_id)
}

fn heartbeat_of(w: &Watch, ticker: &SharedJson<TickerView>) -> FeedMessage {
    FeedMessage::Heartbeat {
        symbol: w.symbol.clone(),
        position: w.position,
        ticker: ticker.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages that come at 0, 5 and 105 ms, whether or not the feed is
    /// polled meanwhile (as trades and depth do: the tail and the depth
    /// publisher keep them until the feed looks).
    fn spaced() -> FeedStream {
        let start = tokio::time::Instant::now();
        let at = [0u64, 5, 105];
        futures::stream::iter(at.into_iter().enumerate())
            .then(move |(n, ms)| async move {
                tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
                FeedMessage::Refused(n.to_string())
            })
            .boxed()
    }

    fn sizes(frames: Vec<Result<Vec<FeedMessage>, ServerFnError>>) -> Vec<usize> {
        frames.into_iter().map(|f| f.unwrap().len()).collect()
    }

    /// Gathered for 20 ms, the two close messages share a write and the
    /// late one goes alone; not gathered, each goes as it comes.
    #[tokio::test(start_paused = true)]
    async fn messages_close_together_are_gathered_into_one_frame() {
        let gathered = frames(spaced(), Duration::from_millis(20));
        assert_eq!(sizes(gathered.collect().await), [2, 1]);
        let at_once = frames(spaced(), Duration::ZERO);
        assert_eq!(sizes(at_once.collect().await), [1, 1, 1]);
    }
}
