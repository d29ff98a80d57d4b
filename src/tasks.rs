//! Background tasks that shutdown waits for: each is spawned on one [`TaskTracker`] together
//! with the cancellation token it must obey, so that once the token fires the server can wait
//! until every one of them has ended before it closes the store and returns.

use std::future::Future;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The process's background tasks and the signal that ends them.
#[derive(Clone, Debug, Default)]
pub struct BackgroundTasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl BackgroundTasks {
    /// Tasks that are asked to end when `shutdown` fires.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            tracker: TaskTracker::new(),
            shutdown,
        }
    }

    /// Spawns `task`, tracked. The task must end soon after [`Self::shutdown_token`] fires.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Fires when the tasks must end.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Asks every task to end, refuses no new ones (a late spawn is still awaited), and waits
    /// until all have ended.
    pub async fn shut_down(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// How many tracked tasks are still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }
}
