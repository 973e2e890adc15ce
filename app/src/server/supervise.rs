//! Supervision: a task that panics is started again, on its own, without
//! touching any other task.

use std::future::Future;
use std::time::{Duration, Instant};

/// The pause before the first restart.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between restarts.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// A run this long went well: a panic after it starts the pauses over.
const RAN_WELL: Duration = Duration::from_secs(60);

/// The pause before starting a task again that panicked after running for
/// `ran`, the pause before its last start being `previous` (none if it
/// never panicked): twice the last, up to [`LONGEST_PAUSE`], so a task that
/// always panics does not spin; the first again after a run that went
/// well, so one panic a day is not met with the pause of a crash loop.
fn pause_after(previous: Option<Duration>, ran: Duration) -> Duration {
    match previous {
        Some(p) if ran < RAN_WELL => (p * 2).min(LONGEST_PAUSE),
        _ => FIRST_PAUSE,
    }
}

/// Runs `start()` as a task, and again whenever it panics, after a pause
/// (see [`pause_after`]). A task that returns is done (its work ran out:
/// its request channel closed).
pub fn supervise<F, Fut>(name: String, mut start: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = None;
        loop {
            let started = Instant::now();
            match tokio::spawn(start()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    let next = pause_after(pause, started.elapsed());
                    tracing::error!(
                        task = %name,
                        pause_ms = next.as_millis() as u64,
                        "task panicked; restarting it from its events"
                    );
                    tokio::time::sleep(next).await;
                    pause = Some(next);
                }
                Err(_) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// A ping (`true`: panic instead of answering) and where its answer,
    /// the task's run number, goes.
    type Pings = Arc<tokio::sync::Mutex<mpsc::Receiver<(bool, oneshot::Sender<u32>)>>>;

    /// A task that answers pings with its run number, and panics when a
    /// ping asks it to.
    fn pinger(
        runs: Arc<AtomicU32>,
        requests: Pings,
    ) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        move || {
            let (runs, requests) = (runs.clone(), requests.clone());
            Box::pin(async move {
                let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                let mut requests = requests.lock().await;
                while let Some((crash, reply)) = requests.recv().await {
                    assert!(!crash, "asked to crash");
                    let _ = reply.send(run);
                }
            })
        }
    }

    async fn ask(tx: &mpsc::Sender<(bool, oneshot::Sender<u32>)>, crash: bool) -> Option<u32> {
        let (reply, answer) = oneshot::channel();
        tx.send((crash, reply)).await.ok()?;
        answer.await.ok()
    }

    /// A task that panics is started again and serves the same requests
    /// channel; a task supervised beside it never notices.
    #[tokio::test]
    async fn a_panicking_task_restarts_alone() {
        let (a_runs, b_runs) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (a_tx, a_rx) = mpsc::channel(8);
        let (b_tx, b_rx) = mpsc::channel(8);
        let a_rx = Arc::new(tokio::sync::Mutex::new(a_rx));
        supervise("a".into(), pinger(a_runs.clone(), a_rx));
        supervise("b".into(), pinger(b_runs.clone(), Arc::new(b_rx.into())));
        assert_eq!(ask(&a_tx, false).await, Some(1));
        assert_eq!(ask(&b_tx, false).await, Some(1));
        // The crash loses its own request's answer, nothing else.
        assert_eq!(ask(&a_tx, true).await, None);
        assert_eq!(ask(&b_tx, false).await, Some(1));
        // The second run answers what the first would have.
        assert_eq!(ask(&a_tx, false).await, Some(2));
        assert_eq!(a_runs.load(Ordering::SeqCst), 2);
        assert_eq!(b_runs.load(Ordering::SeqCst), 1);
    }

    /// Restarts come after growing pauses while the task keeps panicking
    /// at once, never longer than the longest; after a run that went well
    /// the pauses start over.
    #[test]
    fn pauses_grow_in_a_crash_loop_and_start_over_after_a_good_run() {
        let quick = Duration::from_millis(3);
        let mut pauses = Vec::new();
        let mut pause = None;
        for _ in 0..12 {
            let next = pause_after(pause, quick);
            pauses.push(next.as_millis());
            pause = Some(next);
        }
        assert_eq!(
            pauses,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000, 5000]
        );
        assert_eq!(pause_after(pause, RAN_WELL), FIRST_PAUSE);
        assert_eq!(pause_after(pause, RAN_WELL - quick), LONGEST_PAUSE);
    }

    /// A task that returns (its requests ran out) is not started again.
    #[tokio::test]
    async fn a_task_that_returns_is_done() {
        let runs = Arc::new(AtomicU32::new(0));
        let (tx, rx) = mpsc::channel(8);
        supervise("done".into(), pinger(runs.clone(), Arc::new(rx.into())));
        assert_eq!(ask(&tx, false).await, Some(1));
        drop(tx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
