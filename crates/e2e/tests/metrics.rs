//! The Prometheus endpoints after one checkout: every service's HTTP side serves `/metrics`, and
//! the series the system promises exist with sane values — counts of at least one wherever a call,
//! a delivery or a refusal happened, and no negative value anywhere.
//!
//! One test in its own binary: the registry is process-global.

use mercato_e2e::prometheus::Exposition;
use mercato_e2e::stack::{Stack, StackOptions, http_get, press, seed_sku, with_token};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use tonic::Code;

/// A small auth budget, so the test can run into it with a few sign-in attempts.
const BFF_SETTINGS: &[(&str, &str)] = &[
    ("RATE_LIMIT_AUTH_REQUESTS", "1"),
    ("RATE_LIMIT_AUTH_PERIOD", "1h"),
    ("RATE_LIMIT_AUTH_BURST", "3"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_checkout_every_service_exposes_the_promised_series_with_sane_values() {
    let stack = Stack::start(StackOptions {
        stripe: false,
        bff_settings: BFF_SETTINGS,
    })
    .await;
    let mut shop = stack.shop().await;
    let sku = seed_sku(&stack.products.grpc_uri(), 5).await;
    let shopper = shop.sign_up().await;

    // One whole checkout: CreateOrder, the sandbox payment, PAID, shipped and FINISHED.
    let (placed, _) = shop
        .checkout(&shopper, &sku, 1, common::PaymentMethod::Sandbox)
        .await;
    shop.watch_until(
        &shopper,
        &placed.order_id,
        common::OrderStatus::AwaitingPayment,
    )
    .await;
    let payment = shop.payment(&shopper, &placed.order_id).await;
    assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    shop.watch_until(&shopper, &placed.order_id, common::OrderStatus::Finished)
        .await;

    // Refusals at the edge: no token, a token that is not a JWT, and sign-ins over budget
    // (register and the sign-in after it spent two of the three).
    let refused = shop
        .orders
        .list_orders(bff::ListOrdersRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = shop
        .orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), "not-a-jwt"))
        .await
        .expect_err("a malformed token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let mut limited = None;
    for _ in 0..5 {
        let answer = shop
            .auth
            .login(bff::LoginRequest {
                email: shopper.email.clone(),
                password: "not the password".to_owned(),
            })
            .await;
        if let Err(status) = answer
            && status.code() == Code::ResourceExhausted
        {
            limited = Some(status);
            break;
        }
    }
    assert!(
        limited.is_some(),
        "sign-ins past the burst are rate limited"
    );

    // Every HTTP side serves the exposition.
    let mut scrapes = Vec::new();
    for (name, addr) in stack.http_sides() {
        let (status, text) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200, "{name} serves /metrics");
        let exposition = Exposition::parse(&text);
        assert!(
            !exposition.find("grpc_server_handled_total", &[]).is_empty(),
            "{name}'s /metrics has the RPC series"
        );
        scrapes.push((name, exposition));
    }
    // The services share this process, so the last scrape has everything; in production each
    // process has its own.
    let (_, metrics) = scrapes.pop().expect("at least one scrape");

    // Nothing is negative, and every family has a declared type.
    for sample in &metrics.samples {
        assert!(
            sample.value.is_finite() && sample.value >= 0.0,
            "{} {:?} = {}",
            sample.name,
            sample.labels,
            sample.value
        );
    }
    for family in [
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
        "mercato_consumer_deliveries_total",
        "mercato_consumer_dead_letters_total",
        "mercato_consumer_processing_seconds",
        "mercato_consumer_lag_seconds",
        "mercato_outbox_published_total",
        "mercato_outbox_refused_total",
        "mercato_outbox_backlog",
        "mercato_outbox_oldest_age_seconds",
        "mercato_stock_reservations_total",
        "mercato_stock_reservations_ended_total",
        "mercato_bff_auth_failures_total",
        "mercato_bff_rate_limited_total",
        "mercato_bff_rate_limiter_unavailable_total",
        "mercato_bff_jwks_refreshes_total",
    ] {
        assert!(metrics.types.contains_key(family), "{family} is exported");
    }

    // RED per RPC, at every hop of the checkout.
    for (service, method) in [
        ("mercato.bff.v1.OrderService", "CreateOrder"),
        ("mercato.bff.v1.AuthService", "Register"),
        ("mercato.order.v1.OrderService", "CreateOrder"),
        ("mercato.product.v1.StockService", "ReserveStock"),
        ("mercato.product.v1.StockService", "CommitReservation"),
        ("mercato.order.v1.OrderService", "AttachPayment"),
        ("mercato.user.v1.AuthService", "Register"),
    ] {
        let ok = [
            ("grpc_service", service),
            ("grpc_method", method),
            ("grpc_code", "OK"),
        ];
        assert!(
            metrics.sum("grpc_server_handled_total", &ok) >= 1.0,
            "{service}/{method} answered OK at least once"
        );
        let call = [("grpc_service", service), ("grpc_method", method)];
        let timed = metrics.sum("grpc_server_handling_seconds_count", &call);
        assert!(timed >= 1.0, "{service}/{method} was timed");
        let infinite = metrics.sum(
            "grpc_server_handling_seconds_bucket",
            &[
                ("grpc_service", service),
                ("grpc_method", method),
                ("le", "+Inf"),
            ],
        );
        assert!(
            (infinite - timed).abs() < f64::EPSILON,
            "{service}/{method}: the +Inf bucket holds every call"
        );
    }
    assert!(
        metrics.sum(
            "grpc_server_handled_total",
            &[
                ("grpc_service", "mercato.bff.v1.OrderService"),
                ("grpc_method", "ListOrders"),
                ("grpc_code", "UNAUTHENTICATED"),
            ],
        ) >= 2.0,
        "refusals are counted with their code"
    );
    assert!(
        metrics
            .find("grpc_server_handled_total", &[])
            .iter()
            .all(|sample| !sample.label("grpc_service").starts_with("grpc.health")),
        "health checks are not counted"
    );

    // The bus: each consumer of the saga processed at least one delivery, timed and with its
    // lag, and dead-lettered nothing (the series exists at zero).
    for (service, consumer) in [
        ("payment", "order-events"),
        ("order", "payment-outcomes"),
        ("process", "order-paid"),
    ] {
        let queue = stack.queue(service, consumer);
        let queue = queue.as_str();
        assert!(
            metrics.sum(
                "mercato_consumer_deliveries_total",
                &[("queue", queue), ("outcome", "processed")],
            ) >= 1.0,
            "{queue} processed a delivery"
        );
        assert!(
            metrics.sum(
                "mercato_consumer_processing_seconds_count",
                &[("queue", queue)]
            ) >= 1.0
        );
        assert!(metrics.sum("mercato_consumer_lag_seconds_count", &[("queue", queue)]) >= 1.0);
        let dead = metrics.find("mercato_consumer_dead_letters_total", &[("queue", queue)]);
        assert_eq!(dead.len(), 3, "one series per reason for {queue}: {dead:?}");
        assert!(dead.iter().all(|sample| sample.value == 0.0), "{dead:?}");
    }

    // The outbox: the order and payment databases published, and their backlog gauges exist.
    let order_db = stack.order_database();
    let payment_db = stack.payment_database();
    for database in [order_db.as_str(), payment_db.as_str()] {
        assert!(
            metrics.sum("mercato_outbox_published_total", &[("database", database)]) >= 1.0,
            "{database} published its events"
        );
        assert_eq!(
            metrics
                .find("mercato_outbox_backlog", &[("database", database)])
                .len(),
            1,
            "{database} reports its backlog"
        );
        assert_eq!(
            metrics
                .find(
                    "mercato_outbox_oldest_age_seconds",
                    &[("database", database)]
                )
                .len(),
            1
        );
    }

    // Stock: one reservation made and committed by fulfilment; the other outcomes at zero.
    assert!(
        metrics.sum(
            "mercato_stock_reservations_total",
            &[("outcome", "reserved")]
        ) >= 1.0
    );
    assert!(
        metrics.sum(
            "mercato_stock_reservations_ended_total",
            &[("status", "committed")]
        ) >= 1.0
    );
    assert_eq!(
        metrics
            .find("mercato_stock_reservations_ended_total", &[])
            .len(),
        4,
        "committed, released, restocked and expired"
    );

    // The edge: the two refusals by reason, the over-budget sign-ins, the JWKS fetch.
    assert!(
        metrics.sum(
            "mercato_bff_auth_failures_total",
            &[("reason", "token_missing")]
        ) >= 1.0
    );
    assert!(
        metrics.sum(
            "mercato_bff_auth_failures_total",
            &[("reason", "malformed")]
        ) >= 1.0
    );
    assert!(
        metrics.sum(
            "mercato_bff_rate_limited_total",
            &[("class", "auth"), ("subject", "ip")]
        ) >= 1.0
    );
    assert!(metrics.sum("mercato_bff_jwks_refreshes_total", &[("outcome", "ok")]) >= 1.0);
    assert_eq!(
        metrics.sum("mercato_bff_jwks_refreshes_total", &[("outcome", "error")]),
        0.0
    );

    drop(shop);
    stack.stop().await;
}
