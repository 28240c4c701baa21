//! Refused calls never reach the order service.

use std::sync::atomic::Ordering;

use crate::support::{
    FakeUsers, JwksServer, RedisPrefix, TestKey, claims, counting_listener, reason, settings,
    with_token,
};
use mercato_proto::mercato::bff::v1 as bff;
use tonic::Code;
use uuid::Uuid;

use crate::buyer::{Orders, explicit};

#[tokio::test]
async fn refused_calls_never_reach_the_order_service() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let (order_uri, accepted) = counting_listener().await;
    let prefix = RedisPrefix::new();
    let bff = crate::support::TestBff::start(settings(
        &jwks,
        &users_url,
        &prefix,
        &[("ORDER_SERVICE_URL", &order_uri)],
    ))
    .await;
    let channel = bff.channel().await;
    let mut orders = Orders::new(channel.clone());
    let mut admin = bff::admin_service_client::AdminServiceClient::new(channel);
    let buyer = key.sign(&claims(
        &jwks.issuer(),
        &Uuid::new_v4().to_string(),
        &["buyer"],
    ));
    let order_id = Uuid::new_v4().to_string();

    let anonymous = [
        orders
            .create_order(explicit(&Uuid::new_v4().to_string(), &[(&order_id, 1)]))
            .await
            .map(drop),
        orders
            .get_order(bff::GetOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .map(drop),
        orders
            .list_orders(bff::ListOrdersRequest::default())
            .await
            .map(drop),
        orders
            .cancel_order(bff::CancelOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .map(drop),
        orders
            .watch_order(bff::WatchOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .map(drop),
        orders
            .get_order_payment(bff::GetOrderPaymentRequest {
                order_id: order_id.clone(),
            })
            .await
            .map(drop),
    ];
    for (i, outcome) in anonymous.into_iter().enumerate() {
        let status = outcome.expect_err("no token, no order call");
        assert_eq!(status.code(), Code::Unauthenticated, "call {i}: {status:?}");
        assert_eq!(reason(&status), "TOKEN_MISSING", "call {i}");
    }

    let not_admin = [
        admin
            .search_orders(with_token(bff::SearchOrdersRequest::default(), &buyer))
            .await
            .map(drop),
        admin
            .lookup_order(with_token(
                bff::LookupOrderRequest {
                    order_id: order_id.clone(),
                },
                &buyer,
            ))
            .await
            .map(drop),
        admin
            .cancel_any_order(with_token(
                bff::CancelAnyOrderRequest {
                    order_id: order_id.clone(),
                },
                &buyer,
            ))
            .await
            .map(drop),
    ];
    for (i, outcome) in not_admin.into_iter().enumerate() {
        let status = outcome.expect_err("a buyer is no admin");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "call {i}: {status:?}"
        );
        assert_eq!(reason(&status), "ROLE_REQUIRED", "call {i}");
    }

    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no refused call reached the order service"
    );

    // The control: an admitted call does reach it (and, since the stand-in speaks no gRPC,
    // fails UNAVAILABLE without internal detail).
    let reached = orders
        .get_order(with_token(bff::GetOrderRequest { order_id }, &buyer))
        .await
        .expect_err("the stand-in answers nothing");
    assert_eq!(reached.code(), Code::Unavailable, "{reached:?}");
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the stand-in was called"
    );
}
