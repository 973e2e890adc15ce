//! The store as a library: open a data directory, write, read, follow.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::index::metastream_of;
use crate::log::{Log, Recovery, Segments};
use crate::record::StoredEvent;
use crate::recovery::Found;
use crate::reindex::Reindex;
use crate::writer::{
    self, Expected, NewEvent, Op, Shared, WriteOutcome, WriteRequest, WriterMessage,
};

/// Positions taken from the index at a time by a backwards `$all` read.
const BACKWARDS_CHUNK: usize = 256;

/// How the store runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many committed batches a live subscriber may fall behind before
    /// it goes back to reading the log.
    pub live_buffer: usize,
    /// Bytes after which the log starts a new segment file.
    pub segment_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            live_buffer: 1024,
            segment_size: crate::log::SEGMENT_SIZE,
        }
    }
}

/// Where a stream read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStart {
    Start,
    End,
    Revision(u64),
}

/// Where an `$all` read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllStart {
    Start,
    End,
    Position(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// What a stream read will return: where its events lie in the log, in
/// the order asked for, so the caller reads them a page at a time.
#[derive(Debug)]
pub enum StreamRead {
    NotFound,
    Deleted,
    Events {
        positions: Vec<u64>,
        last_revision: u64,
    },
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the event log could not be read or written: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Log(#[from] crate::recovery::LogError),
    #[error("the store is shut down")]
    Closed,
    #[error(transparent)]
    Invalid(#[from] crate::limits::Invalid),
    #[error(transparent)]
    Access(#[from] crate::auth::AccessError),
}

/// A handle onto an open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<WriterMessage>,
    /// True once the writer has closed the log and released its directory.
    closed: watch::Receiver<bool>,
    shared: Shared,
    segments: Segments,
    shutdown: watch::Sender<bool>,
    fallbacks: Arc<AtomicU64>,
    subscriptions: Arc<AtomicU64>,
}

impl Store {
    /// Opens the store in `dir`, recovering the log (a torn tail is cut back
    /// to the last complete record) and rebuilding the index.
    pub fn open(dir: &Path) -> Result<(Store, Recovery), StoreError> {
        Store::open_with(dir, Options::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(dir: &Path, options: Options) -> Result<(Store, Recovery), StoreError> {
        let mut reindex = Reindex::default();
        let (log, recovery) = Log::open(dir, options.segment_size, |found| match found {
            Found::Record(e) => reindex.record(&e),
            Found::Sealed(seal) => reindex.sealed(seal),
            Found::Unsealed(_) => {}
        })?;
        let index = reindex.finish();
        let shared = Shared {
            index: Arc::new(RwLock::new(index)),
            committed_end: Arc::new(AtomicU64::new(log.end())),
            published: broadcast::channel(options.live_buffer.max(1)).0,
        };
        let segments = log.segments();
        let (tx, rx) = mpsc::channel(65_536);
        let for_writer = shared.clone();
        let (closing, closed) = watch::channel(false);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(log, for_writer, rx, closing))?;
        let store = Store {
            tx,
            closed,
            shared,
            segments,
            shutdown: watch::channel(false).0,
            fallbacks: Arc::default(),
            subscriptions: Arc::default(),
        };
        Ok((store, recovery))
    }

    async fn submit(&self, op: Op) -> Result<WriteOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriterMessage::Write(WriteRequest { op, reply }))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// Closes the store: writes already queued are answered, the
    /// checkpoint is made durable and the directory is released; later
    /// writes fail with [`StoreError::Closed`]. Returns once all that is
    /// done, so the directory can be opened again at once, and a process
    /// may exit knowing its log says it stopped cleanly. Reads of what is
    /// written keep working. Calling it again just waits for the first.
    pub async fn close(&self) {
        // A full queue still takes the message once the writer catches up;
        // a writer already gone cannot take it, which is fine.
        let _ = self.tx.send(WriterMessage::Close).await;
        let mut closed = self.closed.clone();
        // An error means the writer thread ended without saying so (it
        // panicked): nothing is left to wait for.
        let _ = closed.wait_for(|c| *c).await;
    }

    /// Appends events atomically, once they are on disk.
    pub async fn append(
        &self,
        stream: Bytes,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<WriteOutcome, StoreError> {
        crate::limits::append(&stream, &events)?;
        self.submit(Op::Append {
            stream,
            expected,
            events,
        })
        .await
    }

    /// Soft-deletes a stream: reads find nothing until the next append.
    pub async fn delete(
        &self,
        stream: Bytes,
        expected: Expected,
    ) -> Result<WriteOutcome, StoreError> {
        crate::limits::stream_name(&stream)?;
        self.submit(Op::Delete { stream, expected }).await
    }

    /// Deletes a stream for good.
    pub async fn tombstone(
        &self,
        stream: Bytes,
        expected: Expected,
    ) -> Result<WriteOutcome, StoreError> {
        crate::limits::stream_name(&stream)?;
        self.submit(Op::Tombstone { stream, expected }).await
    }

    /// How many records `$all` holds (durable and indexed).
    pub fn records(&self) -> u64 {
        self.shared.index.read().expect("index lock").all.len() as u64
    }

    /// The position after the last durable record.
    pub fn committed_end(&self) -> u64 {
        self.shared.committed_end.load(Ordering::Acquire)
    }

    /// Live batches of committed events, for subscriptions.
    pub fn live(&self) -> broadcast::Receiver<Arc<Vec<StoredEvent>>> {
        self.shared.published.subscribe()
    }

    /// How many subscriptions are following live commits right now.
    pub fn live_subscribers(&self) -> usize {
        self.shared.published.receiver_count()
    }

    /// How many times a subscription fell behind the live feed and went
    /// back to reading the log.
    pub fn catch_up_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    pub(crate) fn note_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// How many subscriptions clients have opened since the store started.
    /// A client that keeps one subscription open keeps this still; one that
    /// drops and reopens it shows here.
    pub fn subscriptions_opened(&self) -> u64 {
        self.subscriptions.load(Ordering::Relaxed)
    }

    pub(crate) fn note_subscription(&self) {
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
    }

    /// Becomes true when the store is shutting down.
    pub fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells live subscriptions to end (with an error, so clients retry).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Revisions `[first, len)` of a stream that reads may show, or why none.
    fn visible(&self, stream: &[u8]) -> Result<(u64, u64), StreamRead> {
        let index = self.shared.index.read().expect("index lock");
        // The metadata of a tombstoned stream is deleted with it.
        if let Some(original) = metastream_of(stream)
            && index.stream(original).is_some_and(|s| s.tombstoned)
        {
            return Err(StreamRead::Deleted);
        }
        let Some(s) = index.stream(stream) else {
            return Err(StreamRead::NotFound);
        };
        if s.tombstoned {
            return Err(StreamRead::Deleted);
        }
        if s.positions.is_empty() || s.soft_deleted() {
            return Err(StreamRead::NotFound);
        }
        let len = s.positions.len() as u64;
        // A metastream shows only its latest event ($maxCount 1).
        let first = if metastream_of(stream).is_some() {
            len - 1
        } else {
            s.truncate_before.min(len)
        };
        Ok((first, len))
    }

    /// Plans a read of up to `count` events of a stream from `start` in
    /// `direction` (the start revision is included either way); read the
    /// events with [`Store::read_at`].
    pub fn read_stream(
        &self,
        stream: &[u8],
        start: StreamStart,
        direction: Direction,
        count: u64,
    ) -> StreamRead {
        let (first, len) = match self.visible(stream) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let revisions: Vec<u64> = match direction {
            Direction::Forwards => {
                let from = match start {
                    StreamStart::Start => first,
                    StreamStart::End => len,
                    StreamStart::Revision(r) => r.max(first),
                };
                (from..len).take(count as usize).collect()
            }
            Direction::Backwards => {
                let from = match start {
                    StreamStart::Start => first,
                    StreamStart::End => len - 1,
                    StreamStart::Revision(r) => r.min(len - 1),
                };
                if from < first {
                    Vec::new()
                } else {
                    (first..=from).rev().take(count as usize).collect()
                }
            }
        };
        let positions: Vec<u64> = {
            let index = self.shared.index.read().expect("index lock");
            let s = index.stream(stream).expect("the stream was just seen");
            let at = |r: &u64| {
                s.positions
                    .get(*r as usize)
                    .expect("a revision of the stream")
            };
            revisions.iter().map(at).collect()
        };
        StreamRead::Events {
            positions,
            last_revision: len - 1,
        }
    }

    /// The position of the first record after `position` (or the first
    /// record at all), and the committed end.
    pub fn next_after(&self, position: Option<u64>) -> (Option<u64>, u64) {
        let index = self.shared.index.read().expect("index lock");
        let end = self.committed_end();
        let i = position.map_or(0, |p| index.all.partition_point(|x| x <= p));
        (index.all.get(i), end)
    }

    /// Calls `each` for every record from `from` (a record position) up to
    /// `to`, in order, until it returns false.
    pub fn scan(
        &self,
        from: u64,
        to: u64,
        each: impl FnMut(StoredEvent) -> bool,
    ) -> io::Result<()> {
        self.segments.scan(from, to, each)
    }

    /// Reads up to `count` events of `$all` that pass `keep`. Forwards from a
    /// position includes it; backwards gives the events before it.
    pub fn read_all(
        &self,
        start: AllStart,
        direction: Direction,
        count: u64,
        keep: impl Fn(&StoredEvent) -> bool,
    ) -> io::Result<Vec<StoredEvent>> {
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        match direction {
            Direction::Forwards => {
                let from = {
                    let index = self.shared.index.read().expect("index lock");
                    let i = match start {
                        AllStart::Start => 0,
                        AllStart::End => index.all.len(),
                        AllStart::Position(p) => index.all.partition_point(|x| x < p),
                    };
                    index.all.get(i)
                };
                if let Some(from) = from {
                    self.segments.scan(from, self.committed_end(), |e| {
                        if keep(&e) {
                            out.push(e);
                        }
                        (out.len() as u64) < count
                    })?;
                }
            }
            Direction::Backwards => {
                let mut i = {
                    let index = self.shared.index.read().expect("index lock");
                    match start {
                        AllStart::Start => 0,
                        AllStart::End => index.all.len(),
                        AllStart::Position(p) => index.all.partition_point(|x| x < p),
                    }
                };
                // Walk back a chunk of positions at a time, so a read that
                // wants the last few events copies a few positions.
                while i > 0 {
                    let from = i.saturating_sub(BACKWARDS_CHUNK);
                    let chunk: Vec<u64> = {
                        let index = self.shared.index.read().expect("index lock");
                        index.all.iter_from(from).take(i - from).collect()
                    };
                    for p in chunk.into_iter().rev() {
                        let e = self.segments.read_at(p)?;
                        if keep(&e) {
                            out.push(e);
                            if out.len() as u64 == count {
                                return Ok(out);
                            }
                        }
                    }
                    i = from;
                }
            }
        }
        Ok(out)
    }

    /// The stream's last revision and whether it is tombstoned.
    pub fn stream_state(&self, stream: &[u8]) -> (Option<u64>, bool) {
        let index = self.shared.index.read().expect("index lock");
        index
            .stream(stream)
            .map_or((None, false), |s| (s.last_revision(), s.tombstoned))
    }

    /// Positions of a stream's revisions from `from` on (for subscriptions).
    pub fn stream_positions_from(&self, stream: &[u8], from: u64) -> Vec<(u64, u64)> {
        let index = self.shared.index.read().expect("index lock");
        index.stream(stream).map_or_else(Vec::new, |s| {
            let start = from.max(s.truncate_before) as usize;
            let revisions = (start as u64..).zip(s.positions.iter_from(start));
            revisions.collect()
        })
    }

    pub fn read_at(&self, position: u64) -> io::Result<StoredEvent> {
        self.segments.read_at(position)
    }
}
