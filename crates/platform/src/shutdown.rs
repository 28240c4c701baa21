//! Graceful shutdown: turn SIGTERM/SIGINT into one cancellation every task can watch, then wait
//! for the tasks that registered to finish, up to a grace period.
//!
//! # How the pieces fit
//!
//! A [`Shutdown`] holds two things that are shared by every clone:
//!
//! * a [`CancellationToken`], the *signal*: it starts un-cancelled, and [`Shutdown::trigger`]
//!   (called by the OS-signal task or by a test) cancels it exactly once. Every long-running task
//!   holds a clone and `select!`s on [`Shutdown::cancelled`] next to its real work, so the
//!   moment shutdown begins each task stops *taking new work* (the gRPC server stops accepting,
//!   a consumer stops fetching) while it finishes what it has in hand.
//! * a [`TaskTracker`], the *drain*: every task that must finish before the process may exit is
//!   spawned through [`Shutdown::spawn`] or holds a [`DrainGuard`]. The tracker counts them;
//!   [`Shutdown::drain`] closes it (no new registrations matter after that) and waits until the
//!   count reaches zero.
//!
//! Waiting is bounded: `drain` races the tracker against the grace period and reports what was
//! left, so a stuck task can delay exit by at most the grace period (Kubernetes would SIGKILL us
//! soon after anyway). The typical `main`:
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use mercato_platform::shutdown::Shutdown;
//!
//! let shutdown = Shutdown::new();
//! shutdown.listen_for_signals();
//! let server_stop = shutdown.wait_owned();
//! shutdown.spawn(async move {
//!     // grpc_server.serve(listener, server_stop).await
//!     server_stop.await;
//! });
//! shutdown.cancelled().await; // run until SIGTERM
//! let outcome = shutdown.drain(Duration::from_secs(25)).await;
//! tracing::info!(?outcome, "drained");
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// Which OS signal asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: the orchestrator is stopping the process.
    Terminate,
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
}

/// Resolves when the process receives SIGTERM or SIGINT.
///
/// Fails only if the signal handlers cannot be installed.
pub async fn signal() -> std::io::Result<Signal> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = terminate.recv() => Ok(Signal::Terminate),
            interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| Signal::Interrupt),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| Signal::Interrupt)
    }
}

/// The result of [`Shutdown::drain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every registered task finished within the grace period.
    Complete,
    /// The grace period ran out with `remaining` tasks still running.
    TimedOut {
        /// Tasks (and guards) still registered.
        remaining: usize,
    },
}

/// The shutdown signal plus the set of tasks to drain (see the module docs). Clones share both.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// Keeps [`Shutdown::drain`] waiting while it is alive; drop it when the work it guards is done.
#[derive(Debug)]
pub struct DrainGuard {
    _token: TaskTrackerToken,
}

impl Shutdown {
    /// A fresh, un-triggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Begins shutdown: every [`cancelled`](Self::cancelled) future resolves. Idempotent.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has begun.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// An owned future that resolves once shutdown has begun, for APIs that take a `'static`
    /// shutdown future (`GrpcServer::serve`, `axum::serve(..).with_graceful_shutdown`).
    pub fn wait_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// The underlying token, for libraries that take a `CancellationToken` (the messaging
    /// consumer loop, the outbox relay).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Spawns `task` on the current runtime and registers it for draining.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Registers work that is not spawned here (a request being handled, a task spawned
    /// elsewhere); draining waits until the guard is dropped.
    pub fn register(&self) -> DrainGuard {
        DrainGuard {
            _token: self.tracker.token(),
        }
    }

    /// Tasks and guards currently registered.
    pub fn in_flight(&self) -> usize {
        self.tracker.len()
    }

    /// Spawns a task that triggers shutdown on SIGTERM or SIGINT. The task is not tracked: it
    /// has nothing to finish, and it would never end on its own.
    pub fn listen_for_signals(&self) -> JoinHandle<()> {
        let shutdown = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                received = signal() => match received {
                    Ok(signal) => tracing::info!(?signal, "shutdown signal received"),
                    // Without handlers the process can still be killed; shutting down now would
                    // turn a logging problem into an outage, so only report it.
                    Err(err) => {
                        tracing::error!(error = %err, "failed to install signal handlers");
                        return;
                    }
                },
                // Someone else (a test, a fatal error) triggered first; stop listening.
                () = shutdown.cancelled() => return,
            }
            shutdown.trigger();
        })
    }

    /// Triggers shutdown (if not yet) and waits up to `grace` for every registered task.
    pub async fn drain(&self, grace: Duration) -> Drained {
        self.trigger();
        // Closing lets `wait` resolve once the count reaches zero; tasks registered after this
        // point are still waited for, but an open tracker would make `wait` never resolve.
        self.tracker.close();
        match tokio::time::timeout(grace, self.tracker.wait()).await {
            Ok(()) => Drained::Complete,
            Err(_elapsed) => {
                let remaining = self.tracker.len();
                tracing::warn!(remaining, grace_ms = grace.as_millis(), "drain timed out");
                Drained::TimedOut { remaining }
            }
        }
    }
}
