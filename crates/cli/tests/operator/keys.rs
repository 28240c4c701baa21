//! `keys rotate` / `keys list` on the user service: an immediate rotation makes the new key the
//! one ACTIVE key and retires the old one; a delayed one waits as NEXT, and a second rotation
//! while it waits is refused.

use std::time::Duration;

use mercato_cli::keys::{self, RotateArgs};
use mercato_cli::{Endpoints, Operator};
use tonic::Code;
use uuid::Uuid;

use crate::support::run_json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_makes_a_new_key_active_and_list_shows_it() {
    let env = mercato_user::testing::TestEnv::new()
        .await
        .expect("user resources");
    let user = env.start(|_| {}).await.expect("user service starts");
    // Only the user service runs; the other URLs are never called.
    let unused = "http://127.0.0.1:9";
    let mut endpoints = Endpoints::new(user.grpc_uri(), unused, unused, unused, unused);
    endpoints.operator_id = Uuid::new_v4();
    let operator = Operator::new(endpoints.clone());

    let before = keys::list(&operator).await.expect("keys list");
    let active: Vec<_> = before
        .iter()
        .filter(|key| keys::state_name(key) == "ACTIVE")
        .collect();
    assert_eq!(active.len(), 1, "one active key at start: {before:?}");
    let old_kid = active[0].kid.clone();

    let rotated = keys::rotate(
        &operator,
        &RotateArgs {
            activation_delay: Some(Duration::ZERO),
            ..RotateArgs::default()
        },
    )
    .await
    .expect("an immediate rotation");
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(keys::state_name(&rotated), "ACTIVE");

    let after = keys::list(&operator).await.expect("keys list");
    let state_of = |kid: &str| {
        after
            .iter()
            .find(|key| key.kid == kid)
            .map(keys::state_name)
            .unwrap_or_else(|| panic!("{kid} listed in {after:?}"))
    };
    assert_eq!(state_of(&rotated.kid), "ACTIVE");
    assert_eq!(state_of(&old_kid), "RETIRED");
    assert_eq!(
        after
            .iter()
            .filter(|key| keys::state_name(key) == "ACTIVE")
            .count(),
        1
    );
    assert!(keys::keys_table(&after).contains(&rotated.kid));

    // A delayed rotation waits as NEXT; another one meanwhile is refused.
    let next = run_json(&endpoints, &["keys", "rotate", "--activation-delay", "1h"]).await;
    assert_eq!(next["state"], "NEXT");
    assert!(next["public_jwk"].is_object(), "{next}");
    let refused = keys::rotate(&operator, &RotateArgs::default())
        .await
        .expect_err("one NEXT key at a time");
    let rpc = refused.rpc().expect("rpc refusal");
    assert_eq!(rpc.code, Code::FailedPrecondition);
    assert_eq!(rpc.reason.as_deref(), Some("SIGNING_KEY_NOT_READY"));
    let listed = run_json(&endpoints, &["keys", "list"]).await;
    let kids: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|key| key["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&next["kid"].as_str().expect("kid")),
        "{kids:?}"
    );
    assert!(kids.contains(&rotated.kid.as_str()));

    user.stop().await.expect("user service stops cleanly");
}
