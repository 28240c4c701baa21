//! The built `mercato` binary: `--help` succeeds and lists the commands, usage errors exit with
//! 2, and a service that does not answer exits with 1 and one line naming the RPC and the cause.

use std::process::{Command, Output};

fn mercato(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn help_lists_the_commands_and_usage_errors_exit_with_2() {
    let help = mercato(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for command in [
        "seed", "coupon", "campaign", "order", "dlq", "payments", "keys",
    ] {
        assert!(text.contains(command), "{command} in\n{text}");
    }
    assert!(text.contains("--json"), "{text}");

    let replay_help = mercato(&["dlq", "replay", "--help"]);
    assert_eq!(replay_help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&replay_help.stdout).contains("--message-id"));

    for bad in [
        &["no-such-command"][..],
        &[
            "coupon",
            "create",
            "--name",
            "x",
            "--kind",
            "bogus",
            "--validity-days",
            "1",
        ],
        &[
            "dlq",
            "replay",
            "--service",
            "payment",
            "--consumer",
            "order-events",
        ],
        &["payments", "reconcile", "--older-than", "ten minutes"],
    ] {
        let out = mercato(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{bad:?} explains itself");
    }
}

#[tokio::test]
async fn an_unreachable_service_exits_with_1_and_one_line() {
    // A port that was just free: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let url = format!("http://{addr}");
    let out = mercato(&[
        "--payment-url",
        &url,
        "--timeout",
        "5s",
        "payments",
        "reconcile",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: PaymentService.ReconcilePayments failed: UNAVAILABLE"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
