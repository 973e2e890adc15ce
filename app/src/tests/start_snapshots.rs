//! Start snapshots: a start that takes up the newest snapshot and folds
//! only the log after it has exactly the ledger, books, candles and order
//! history of a fold from the log's first event, at any prefix of a random
//! flow; a snapshot that is damaged, of a log cut before it, of another
//! history or of another format is passed over for an older one or for
//! the fold from the start; and `exchange check` tells a snapshot that
//! differs from the fold.

use orderbook::sim::Rng;

use super::*;
use crate::api::FeedPosition;
use crate::server::start_snapshots::{
    Announced, FoldFrom, Lines, StartFolds, StartSnapshotChecked, Taken, VERSION, check, decode,
    encode, fold_log, lines, newest_ledger, pack, parts_stream, taken_stream, write,
};

const MARKETS: [(&str, u64, &str); 2] = [("BTC-USD", 30_000, "0.00"), ("ETH-USD", 2_000, "0.0")];

/// Random order actions by `traders` on both markets: limit orders about
/// the market (crossing now and then), market orders, and cancels and
/// amendments of orders placed before. What the exchange refuses (funds,
/// an order gone) is part of the flow.
async fn flow(
    s: &Server,
    traders: &mut [Browser],
    rng: &mut Rng,
    steps: u64,
    placed: &mut Vec<(usize, usize, String)>,
) {
    for _ in 0..steps {
        let who = rng.below(traders.len() as u64) as usize;
        let market = rng.below(2) as usize;
        let (symbol, mid, lots) = MARKETS[market];
        let side = if rng.chance(50) { "buy" } else { "sell" };
        let price = (mid - 10 + rng.below(21)).to_string();
        let quantity = format!("{lots}{}", 1 + rng.below(9));
        let b = &mut traders[who];
        match rng.below(10) {
            0..=5 => {
                let order = [
                    ("symbol", symbol),
                    ("side", side),
                    ("order_type", "limit"),
                    ("price", price.as_str()),
                    ("quantity", quantity.as_str()),
                ];
                if let Ok(id) = b.call::<String>(s, "place_order", &order).await {
                    placed.push((who, market, id));
                }
            }
            6 => {
                let order = [
                    ("symbol", symbol),
                    ("side", side),
                    ("order_type", "market"),
                    ("quantity", quantity.as_str()),
                ];
                let _ = b.call::<String>(s, "place_order", &order).await;
            }
            7 | 8 if !placed.is_empty() => {
                let (owner, market, id) = placed[rng.below(placed.len() as u64) as usize].clone();
                let symbol = MARKETS[market].0;
                let b = &mut traders[owner];
                if rng.chance(50) {
                    let cancel = [("symbol", symbol), ("order_id", id.as_str())];
                    let _ = b.call::<()>(s, "cancel_order", &cancel).await;
                } else {
                    let amend = [
                        ("symbol", symbol),
                        ("order_id", id.as_str()),
                        ("price", price.as_str()),
                        ("quantity", quantity.as_str()),
                    ];
                    let _ = b.call::<String>(s, "amend_order", &amend).await;
                }
            }
            _ => {
                let _ = b.call::<()>(s, "claim_faucet", &[]).await;
            }
        }
    }
}

/// What the folds write down: the three read models' lines.
fn lines_of(folds: &StartFolds) -> Lines {
    encode(
        &folds.ledger.ledger,
        &folds.market_data,
        &folds.order_history,
    )
    .expect("the log's end is between orders")
}

/// The same, one line after another: to compare byte for byte (and to
/// store unpacked, as version 2 stored them).
fn written(folds: &StartFolds) -> Vec<u8> {
    lines_of(folds).join(&b'\n')
}

/// Asserts two written-down folds are the same, naming where they part.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    let around = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(120)..(at + 120).min(b.len())]).to_string()
    };
    panic!(
        "{what}: they part at byte {at} of {} and {}:\n got: …{}…\nwant: …{}…",
        got.len(),
        want.len(),
        around(got),
        around(want)
    );
}

async fn fold(s: &Server, from: FoldFrom) -> StartFolds {
    fold_until(s, from, None).await
}

async fn fold_until(s: &Server, from: FoldFrom, until: Option<FeedPosition>) -> StartFolds {
    let markets = settings().markets;
    fold_log(&s.exchange.client(), &markets, from, until)
        .await
        .unwrap()
}

/// Writes a snapshot of the log as it is now (nothing is being written).
async fn snapshot_now(s: &Server) -> Announced {
    let folds = fold(s, FoldFrom::NewestSnapshot).await;
    let client = s.exchange.client();
    write(&client, lines_of(&folds), folds.position.unwrap())
        .await
        .unwrap()
        .unwrap()
}

async fn traders(s: &Server, n: usize) -> Vec<Browser> {
    let mut all = Vec::new();
    for i in 0..n {
        all.push(Browser::sign_up(s, &format!("trader{i}")).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_from_a_snapshot_is_the_fold_from_the_first_event() {
    for seed in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let s = start(dir.path()).await;
        let mut rng = Rng::new(seed);
        let mut traders = traders(&s, 4).await;
        let mut placed = Vec::new();
        let prefix = 20 + rng.below(60);
        flow(&s, &mut traders, &mut rng, prefix, &mut placed).await;
        // The snapshot is the fold of the log up to it.
        let taken = snapshot_now(&s).await;
        let covers = Some(taken.taken.covers);
        let at_snapshot = fold_until(&s, FoldFrom::FirstEvent, covers).await;
        assert_eq!(at_snapshot.position, covers);
        let from_snapshot = fold(&s, FoldFrom::NewestSnapshot).await;
        assert_eq!(from_snapshot.from.as_ref(), Some(&taken), "seed {seed}");
        assert_same(
            &written(&from_snapshot),
            &written(&at_snapshot),
            "at the snapshot",
        );
        // What an accounts task that folds its ledger again takes up: the
        // ledger alone, the same.
        let client = s.exchange.client();
        let (ledger, announced) = newest_ledger(&client).await.unwrap().unwrap();
        assert_eq!(announced, taken);
        assert_eq!(ledger.snapshot(), at_snapshot.ledger.ledger.snapshot());
        // Then the log goes on: the snapshot and the log after it fold to
        // what the whole log folds to.
        flow(&s, &mut traders, &mut rng, 40, &mut placed).await;
        let from_snapshot = fold(&s, FoldFrom::NewestSnapshot).await;
        // To the same point: the leader's claim renewals go on meanwhile.
        let from_start = fold_until(&s, FoldFrom::FirstEvent, from_snapshot.position).await;
        assert_eq!(from_snapshot.from.as_ref(), Some(&taken));
        assert_eq!(from_snapshot.position, from_start.position);
        assert!(from_snapshot.position > Some(taken.at), "the flow went on");
        assert_same(
            &written(&from_snapshot),
            &written(&from_start),
            "after the snapshot",
        );
        // The operator's check finds the snapshot equal to the fold.
        let client = s.exchange.client();
        let markets = settings().markets;
        let checked = check(&client, &markets).await.unwrap();
        assert_eq!(checked, StartSnapshotChecked::Equal(taken.clone()));
        // A server started on the store takes the snapshot up and serves
        // what the one before served.
        let mut moments = Default::default();
        let before = views(&s, &mut traders, &mut moments).await;
        s.exchange.stop().await;
        let s = start(dir.path()).await;
        let after = views(&s, &mut traders, &mut moments).await;
        for (got, want) in after.iter().zip(&before) {
            assert_same(got.as_bytes(), want.as_bytes(), "a page after the restart");
        }
        check_store(&s).await;
    }
}

/// Everything each trader's pages show (the account, the orders and the
/// trades), and each market's first paint (candles, trades, ticker and
/// book; not the position it was read at, as a starting server writes its
/// fences into the market streams).
async fn views(
    s: &Server,
    traders: &mut [Browser],
    moments: &mut std::collections::HashMap<&'static str, u64>,
) -> Vec<String> {
    let mut seen = Vec::new();
    for b in traders.iter_mut() {
        let account: Option<AccountView> = b.call(s, "my_account", &[]).await.unwrap();
        seen.push(format!("{account:?}"));
        let page = [("limit", "500")];
        let orders: serde_json::Value = b.call(s, "my_orders", &page).await.unwrap();
        seen.push(orders.to_string());
        let trades: serde_json::Value = b.call(s, "my_trades", &page).await.unwrap();
        seen.push(trades.to_string());
    }
    for (symbol, ..) in MARKETS {
        let mut market = s.exchange.snapshot(symbol).unwrap();
        market.position = None;
        assert!(!market.trades.is_empty(), "the flow traded on {symbol}");
        seen.push(serde_json::to_string(&market).unwrap());
        // The time machine, at moments over the market's history before
        // the restart (which adds fences): its event times and trades.
        let events = s.exchange.book(symbol).unwrap().events_applied();
        let events = events.min(*moments.get(symbol).unwrap_or(&events));
        moments.insert(symbol, events);
        for n in [1, events / 3, events * 2 / 3, events] {
            let mut replayed = s
                .exchange
                .replay(symbol, ReplayTo::Events(n))
                .await
                .unwrap();
            replayed.total = 0; // the fences again
            seen.push(format!("{replayed:?}"));
        }
    }
    seen
}

/// Announces `taken` as if a writer had, whatever it says.
async fn announce(s: &Server, taken: &Taken) {
    let event = eventstore::EventData::json("StartSnapshotTaken", taken).unwrap();
    let options = eventstore::AppendToStreamOptions::default();
    let client = s.exchange.client();
    client
        .append_to_stream(taken_stream(), &options, vec![event])
        .await
        .unwrap();
}

/// Writes `stored` as a snapshot's one part and announces it, hashed
/// right.
async fn forge(s: &Server, stored: &[u8], covers: FeedPosition, last_event: uuid::Uuid) {
    let client = s.exchange.client();
    let part =
        eventstore::EventData::binary("StartSnapshotPart", bytes::Bytes::copy_from_slice(stored));
    let options = eventstore::AppendToStreamOptions::default();
    let written = client
        .append_to_stream(parts_stream(), &options, vec![part])
        .await
        .unwrap();
    use blake2::Digest;
    let hash = blake2::Blake2b512::digest(stored)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let taken = Taken {
        first_part: written.next_expected_version,
        parts: 1,
        bytes: stored.len() as u64,
        json_bytes: stored.len() as u64,
        hash,
        covers,
        last_event,
    };
    announce(s, &taken).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_a_start_cannot_trust_are_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut rng = Rng::new(7);
    let mut traders = traders(&s, 3).await;
    let mut placed = Vec::new();
    flow(&s, &mut traders, &mut rng, 30, &mut placed).await;
    snapshot_now(&s).await;
    flow(&s, &mut traders, &mut rng, 30, &mut placed).await;
    let newer = snapshot_now(&s).await;
    let whole = written(&fold(&s, FoldFrom::FirstEvent).await);
    let starts_from = |from: Option<&Announced>| from.map(|a| a.taken.clone());
    let folded = fold(&s, FoldFrom::NewestSnapshot).await;
    assert_eq!(starts_from(folded.from.as_ref()), Some(newer.taken.clone()));
    assert_same(&written(&folded), &whole, "from the newest");

    type Forgery = Box<dyn Fn(&Taken) -> Taken>;
    let forged: [(&str, Forgery); 4] = [
        (
            "damaged: its bytes are not what was hashed",
            Box::new(|t| Taken {
                hash: "00".repeat(32),
                ..t.clone()
            }),
        ),
        (
            "missing parts",
            Box::new(|t| Taken {
                parts: t.parts + 3,
                ..t.clone()
            }),
        ),
        (
            "newer than the log (a log cut before it)",
            Box::new(|t| Taken {
                covers: FeedPosition {
                    commit: t.covers.commit + (1 << 40),
                    prepare: t.covers.prepare + (1 << 40),
                },
                ..t.clone()
            }),
        ),
        (
            "of another history of the log",
            Box::new(|t| Taken {
                last_event: uuid::Uuid::new_v4(),
                ..t.clone()
            }),
        ),
    ];
    for (what, forge_from) in &forged {
        // The newest is untrustworthy: the one before it is taken.
        announce(&s, &forge_from(&newer.taken)).await;
        let folded = fold(&s, FoldFrom::NewestSnapshot).await;
        assert_eq!(
            starts_from(folded.from.as_ref()),
            Some(newer.taken.clone()),
            "{what}"
        );
        assert_same(&written(&folded), &whole, what);
        // Both kept are untrustworthy: the fold starts at the first event.
        announce(&s, &forge_from(&newer.taken)).await;
        let folded = fold(&s, FoldFrom::NewestSnapshot).await;
        assert_eq!(starts_from(folded.from.as_ref()), None, "{what}");
        assert_same(&written(&folded), &whole, what);
        // A good one again, for the next case.
        announce(&s, &newer.taken).await;
    }

    // Whole and intact, but not of the form this program writes (one of
    // another version written under this version's name): passed over.
    let covers = newer.taken.covers;
    let last_event = newer.taken.last_event;
    let other_form = b"{\"accounts\":7}\n{}\n{}";
    forge(&s, &pack(&lines(other_form).unwrap()), covers, last_event).await;
    let folded = fold(&s, FoldFrom::NewestSnapshot).await;
    assert_eq!(starts_from(folded.from.as_ref()), Some(newer.taken.clone()));
    assert_same(&written(&folded), &whole, "of another form");
    // Nor is a whole snapshot version 3 wrote (its long tables as JSON
    // rows), were it found under this version's name.
    announce(&s, &newer.taken).await;
    let version_3 = lines(include_bytes!("start_snapshot_v3.jsonl")).unwrap();
    forge(&s, &pack(&version_3), covers, last_event).await;
    let folded = fold(&s, FoldFrom::NewestSnapshot).await;
    assert_eq!(starts_from(folded.from.as_ref()), Some(newer.taken.clone()));
    assert_same(&written(&folded), &whole, "of version 3");
    assert!(decode(version_3, &settings().markets).is_err());
    // Nor are lines stored unpacked (as version 2 stored them).
    announce(&s, &newer.taken).await;
    forge(&s, &written(&folded), covers, last_event).await;
    let folded = fold(&s, FoldFrom::NewestSnapshot).await;
    assert_eq!(starts_from(folded.from.as_ref()), Some(newer.taken.clone()));
    assert_same(&written(&folded), &whole, "not packed");

    // Whole, intact and of the form, but not the fold: a start cannot
    // tell (it is taken), the operator's check can.
    let mut other = folded;
    other.order_history = Default::default();
    forge(&s, &pack(&lines_of(&other)), covers, last_event).await;
    let markets = settings().markets;
    match check(&s.exchange.client(), &markets).await.unwrap() {
        StartSnapshotChecked::Differs(a) => assert_eq!(a.taken.covers, covers),
        other => panic!("the check found {other:?}"),
    }
}

/// A snapshot this version wrote (of a flow like the tests' above) reads
/// back and writes down to the same bytes. When a written-down form
/// changes, this fails: then the format's version must change too (so
/// snapshots of the old form are not misread, but passed over), and this
/// document be written again by the new version.
#[test]
fn the_start_snapshot_format_is_pinned() {
    let pinned = include_bytes!("start_snapshot_v4.jsonl");
    assert_eq!(VERSION, 4, "a new version wants a document of its own");
    let pinned_lines = lines(pinned).unwrap();
    let (ledger, market_data, order_history) = decode(pinned_lines, &settings().markets).unwrap();
    let again = encode(&ledger.ledger, &market_data, &order_history).unwrap();
    assert_same(&again.join(&b'\n'), pinned, "version 4 written down again");
}

/// A server on the store in `dir` that writes a start snapshot whenever
/// the log has grown by `every` bytes (and by the last one's size).
async fn server_writing(dir: &std::path::Path, every: u64) -> Server {
    let mut config = settings();
    config.start_snapshot_every = every;
    let data = dir.join("events");
    start_on_with(config, Connection::Embedded { data }).await
}

/// Waits until the server has written a snapshot that covers more than
/// `than` of the log, and returns what it covers.
async fn written_past(s: &Server, than: u64) -> u64 {
    for _ in 0..600 {
        let covers = s.exchange.stats().start_snapshot;
        if covers > than {
            return covers;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no start snapshot past {than} was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_writes_start_snapshots_as_the_log_grows_and_starts_take_them_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_writing(dir.path(), 1).await;
    assert_eq!(s.exchange.stats().start_snapshot, 0, "an empty log");
    let mut rng = Rng::new(11);
    let mut traders = traders(&s, 3).await;
    let mut placed = Vec::new();
    flow(&s, &mut traders, &mut rng, 40, &mut placed).await;
    // While it runs, the leader writes one of the log so far.
    let first = written_past(&s, 0).await;
    let mut moments = Default::default();
    let before = views(&s, &mut traders, &mut moments).await;
    s.exchange.stop().await;
    // A start takes it up (and finds the log since too short for
    // another), and serves what the server before it served.
    let s = server_writing(dir.path(), 1).await;
    assert_eq!(s.exchange.stats().start_snapshot, first);
    let after = views(&s, &mut traders, &mut moments).await;
    for (got, want) in after.iter().zip(&before) {
        assert_same(got.as_bytes(), want.as_bytes(), "a page after the restart");
    }
    // Once the log after it is as long as its JSON, another is written.
    let size = fold(&s, FoldFrom::NewestSnapshot)
        .await
        .from
        .unwrap()
        .taken
        .json_bytes;
    let client = s.exchange.client();
    let end = || async {
        let end = crate::server::streams::last_position(&client)
            .await
            .unwrap();
        end.map_or(0, |p| p.commit)
    };
    let mark = end().await;
    while end().await < mark + size {
        flow(&s, &mut traders, &mut rng, 20, &mut placed).await;
    }
    let second = written_past(&s, first).await;
    let folded = fold(&s, FoldFrom::NewestSnapshot).await;
    assert_eq!(folded.from.map(|a| a.taken.covers.commit), Some(second));
    let markets = settings().markets;
    match check(&s.exchange.client(), &markets).await.unwrap() {
        StartSnapshotChecked::Equal(a) => assert_eq!(a.taken.covers.commit, second),
        other => panic!("the check found {other:?}"),
    }
    s.exchange.stop().await;
}
