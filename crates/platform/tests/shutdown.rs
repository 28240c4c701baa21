//! Shutdown and drain: registered tasks are waited for, the grace period bounds the wait, and an
//! OS signal triggers the shutdown.

mod support;

use std::time::Duration;

use mercato_platform::shutdown::{Drained, Shutdown, Signal, signal};
use support::within;
use tokio::sync::oneshot;

#[tokio::test]
async fn drain_waits_for_registered_tasks_to_finish() {
    let shutdown = Shutdown::new();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (finished_tx, mut finished_rx) = oneshot::channel::<()>();
    let worker = shutdown.clone();
    shutdown.spawn(async move {
        worker.cancelled().await;
        // Finishing in-flight work takes until the test says so.
        let _ = release_rx.await;
        let _ = finished_tx.send(());
    });
    let guard = shutdown.register();
    assert_eq!(shutdown.in_flight(), 2);

    let drainer = shutdown.clone();
    let drain = tokio::spawn(async move { drainer.drain(Duration::from_secs(30)).await });
    within("shutdown being triggered", shutdown.cancelled()).await;
    assert!(
        finished_rx.try_recv().is_err(),
        "the worker is still finishing"
    );

    release_tx.send(()).expect("worker waiting");
    drop(guard);
    let outcome = within("the drain", drain)
        .await
        .expect("drain task not panicked");
    assert_eq!(outcome, Drained::Complete);
    assert!(
        finished_rx.try_recv().is_ok(),
        "drain returned only after the worker finished"
    );
    assert_eq!(shutdown.in_flight(), 0);
}

#[tokio::test]
async fn drain_gives_up_after_the_grace_period() {
    let shutdown = Shutdown::new();
    let _stuck = shutdown.register();
    let outcome = within("the drain", shutdown.drain(Duration::from_millis(50))).await;
    assert_eq!(outcome, Drained::TimedOut { remaining: 1 });
    assert!(shutdown.is_triggered());
}

#[tokio::test]
async fn sigterm_resolves_the_signal_future() {
    let mut received = Box::pin(signal());
    // The first poll installs the handler; only then is it safe to send the signal, because
    // SIGTERM's default action would end the test process.
    assert!(futures::poll!(&mut received).is_pending());
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(std::process::id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    let signal = within("the signal", received)
        .await
        .expect("handlers installed");
    assert_eq!(signal, Signal::Terminate);
}
