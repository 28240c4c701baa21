//! Running async cleanup from `Drop`, which cannot await.

use std::future::Future;

/// Runs `cleanup` to completion on a fresh thread with its own single-thread
/// runtime, and waits for it. This works inside a runtime (where
/// `block_on` would panic) and outside one, and does not depend on the test's
/// runtime still making progress: a `#[tokio::test]` runtime is blocked
/// while its test's guards drop.
pub(crate) fn run_blocking<F>(what: &'static str, cleanup: F)
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let worker = std::thread::Builder::new()
        .name(format!("testkit-{what}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(cleanup)
        });
    let outcome = match worker {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err("cleanup thread panicked".to_owned())),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = outcome {
        // Drop cannot fail; say what leaked so it can be swept.
        eprintln!("testkit: {what} cleanup failed: {error}");
    }
}
