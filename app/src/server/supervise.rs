//! Supervision: a task that panics is started again, on its own, without
//! touching any other task.

use std::future::Future;
use std::time::Duration;

/// Runs `start()` as a task, and again whenever it panics, with a short
/// growing pause so a task that always panics does not spin. A task that
/// returns is done (its work ran out: its request channel closed).
pub fn supervise<F, Fut>(name: String, mut start: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(10);
        loop {
            match tokio::spawn(start()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    tracing::error!(task = %name, "task panicked; restarting it from its events");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(_) => return,
            }
        }
    });
}
