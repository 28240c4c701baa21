//! Running async cleanup from `Drop`, which cannot await.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// How long a guard waits for its cleanup before reporting it and moving on: a server that
/// stopped answering must cost a test a leak warning, never a hang.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cleanup` to completion on a fresh thread with its own single-thread
/// runtime, and waits for it (at most [`CLEANUP_TIMEOUT`]). This works inside a
/// runtime (where `block_on` would panic) and outside one, and does not depend
/// on the test's runtime still making progress: a `#[tokio::test]` runtime is
/// blocked while its test's guards drop.
pub(crate) fn run_blocking<F>(what: &'static str, cleanup: F)
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let (done, outcome) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(format!("testkit-{what}"))
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())
                .and_then(|runtime| runtime.block_on(cleanup));
            // The guard may have stopped waiting; then nobody listens, which is fine.
            let _ = done.send(result);
        });
    let outcome =
        match worker {
            Ok(_detached) => outcome
                .recv_timeout(CLEANUP_TIMEOUT)
                .unwrap_or_else(|error| match error {
                    mpsc::RecvTimeoutError::Timeout => {
                        Err(format!("no answer within {CLEANUP_TIMEOUT:?}"))
                    }
                    mpsc::RecvTimeoutError::Disconnected => {
                        Err("cleanup thread panicked".to_owned())
                    }
                }),
            Err(error) => Err(error.to_string()),
        };
    if let Err(error) = outcome {
        // Drop cannot fail; say what leaked so it can be swept.
        eprintln!("testkit: {what} cleanup failed: {error}");
    }
}
