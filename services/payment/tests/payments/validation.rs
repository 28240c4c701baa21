//! Bad input and access: precise statuses naming the field, nothing written; someone else's
//! payment looks NOT_FOUND; admin-only RPCs; the wallet's database guards; page tokens.

use mercato_platform::principal::Role;
use mercato_proto::mercato::common::v1::{Money, OrderStatus, PaymentMethod};
use mercato_proto::mercato::payment::v1 as pb;
use pb::payout_service_client::PayoutServiceClient;
use tonic::Code;
use uuid::Uuid;

use crate::shop::{Shop, as_admin, as_buyer, as_user, fields, reason, yen};

async fn ledger_count(shop: &Shop) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ledger_entries")
        .fetch_one(shop.pool())
        .await
        .expect("count")
}

async fn charge(
    shop: &Shop,
    user: Uuid,
    amount: Option<Money>,
    key: &str,
) -> Result<pb::ChargePointsResponse, tonic::Status> {
    shop.wallets
        .clone()
        .charge_points(as_buyer(
            pb::ChargePointsRequest {
                amount,
                idempotency_key: key.to_owned(),
            },
            user,
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_charges_are_refused_precisely_and_write_nothing() {
    let shop = Shop::start_with(|settings| settings.wallet.max_balance = 1_500).await;
    let user = Uuid::now_v7();
    for amount in [0, -1, -1_000_000, 1_000_001, i64::MAX, i64::MIN] {
        let error = charge(&shop, user, yen(amount), "k1")
            .await
            .expect_err("refused");
        assert_eq!(
            reason(&error),
            (Code::InvalidArgument, "VALIDATION_FAILED".to_owned())
        );
        assert_eq!(fields(&error), ["amount.amount_minor"], "{amount}");
    }
    let error = charge(&shop, user, None, "k1").await.expect_err("refused");
    assert_eq!(fields(&error), ["amount"]);
    for key in ["", "has space", &"k".repeat(129)] {
        let error = charge(&shop, user, yen(10), key)
            .await
            .expect_err("refused");
        assert_eq!(fields(&error), ["idempotency_key"], "{key:?}");
    }
    let usd = Some(Money {
        currency_code: "USD".to_owned(),
        amount_minor: 10,
    });
    let error = charge(&shop, user, usd, "k1").await.expect_err("refused");
    assert_eq!(
        reason(&error),
        (Code::InvalidArgument, "CURRENCY_MISMATCH".to_owned())
    );
    let error = charge(&shop, user, yen(1_501), "k1")
        .await
        .expect_err("refused");
    assert_eq!(
        reason(&error),
        (Code::FailedPrecondition, "WALLET_LIMIT_EXCEEDED".to_owned())
    );
    assert_eq!(ledger_count(&shop).await, 0, "nothing written");
    assert_eq!(shop.balance(user).await, 0);

    // A replay returns the first entry; the key with another amount is refused.
    let first = charge(&shop, user, yen(1_000), "k2")
        .await
        .expect("charged");
    let replay = charge(&shop, user, yen(1_000), "k2")
        .await
        .expect("replayed");
    assert_eq!(
        first.entry.as_ref().map(|e| &e.entry_id),
        replay.entry.as_ref().map(|e| &e.entry_id)
    );
    let error = charge(&shop, user, yen(999), "k2")
        .await
        .expect_err("refused");
    assert_eq!(
        reason(&error),
        (
            Code::FailedPrecondition,
            "IDEMPOTENCY_KEY_REUSED".to_owned()
        )
    );
    // Above the maximum after this charge.
    let error = charge(&shop, user, yen(501), "k3")
        .await
        .expect_err("refused");
    assert_eq!(
        reason(&error),
        (Code::FailedPrecondition, "WALLET_LIMIT_EXCEEDED".to_owned())
    );
    assert_eq!(ledger_count(&shop).await, 1);
    assert_eq!(shop.balance(user).await, 1_000);
    let anonymous = shop
        .wallets
        .clone()
        .get_wallet(pb::GetWalletRequest {})
        .await
        .expect_err("refused");
    assert_eq!(
        reason(&anonymous),
        (Code::Unauthenticated, "TOKEN_MISSING".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_balance_edits_outside_the_ledger_and_negative_balances() {
    let shop = Shop::start().await;
    let user = Uuid::now_v7();
    shop.charge(user, 100).await;
    let direct = sqlx::query("UPDATE wallets SET balance = 1000000 WHERE user_id = $1")
        .bind(user)
        .execute(shop.pool())
        .await;
    assert!(direct.is_err(), "a direct balance update is refused");
    let overdraw = sqlx::query(
        "INSERT INTO ledger_entries (entry_id, user_id, kind, amount, payment_id, create_time) \
         VALUES ($1, $2, 'SPEND', -101, $3, now())",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(Uuid::now_v7())
    .execute(shop.pool())
    .await
    .expect_err("an overdraft is refused");
    assert!(
        overdraw
            .to_string()
            .contains("wallets_balance_non_negative"),
        "{overdraw}"
    );
    let rewrite = sqlx::query("UPDATE ledger_entries SET amount = 5000 WHERE user_id = $1")
        .bind(user)
        .execute(shop.pool())
        .await;
    assert!(rewrite.is_err(), "ledger entries are append-only");
    assert_eq!(shop.balance(user).await, 100);
    shop.assert_ledgers_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_scoped_to_their_payer_and_refunds_to_admins() {
    let shop = Shop::start().await;
    let sku = shop.sku(1_000, 5).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &sku, 1, PaymentMethod::Sandbox).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::AwaitingPayment)
        .await;
    let payment = shop.intent_of(buyer, &order.order_id).await;
    let get = |user: Uuid, id: &str| {
        let mut client = shop.payments.clone();
        let request = as_buyer(
            pb::GetPaymentRequest {
                payment_id: id.to_owned(),
            },
            user,
        );
        async move { client.get_payment(request).await }
    };

    assert!(get(buyer, &payment.payment_id).await.is_ok());
    let other = get(Uuid::now_v7(), &payment.payment_id)
        .await
        .expect_err("not visible");
    assert_eq!(
        reason(&other),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );
    let unknown = get(buyer, &Uuid::now_v7().to_string())
        .await
        .expect_err("unknown");
    assert_eq!(
        reason(&unknown),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );
    let malformed = get(buyer, "not-a-uuid").await.expect_err("malformed");
    assert_eq!(fields(&malformed), ["payment_id"]);
    let someone_else_lists = shop
        .payments
        .clone()
        .list_payments(as_buyer(
            pb::ListPaymentsRequest {
                order_id: order.order_id.clone(),
                ..Default::default()
            },
            Uuid::now_v7(),
        ))
        .await
        .expect("listed")
        .into_inner();
    assert!(someone_else_lists.payments.is_empty());
    let bad_order = shop
        .payments
        .clone()
        .list_payments(as_buyer(
            pb::ListPaymentsRequest {
                order_id: "nope".to_owned(),
                page_size: -1,
                ..Default::default()
            },
            buyer,
        ))
        .await
        .expect_err("refused");
    assert_eq!(reason(&bad_order).0, Code::InvalidArgument);

    // Admin reads omit nothing but the client secret; buyers cannot use them.
    let looked_up = shop
        .payments
        .clone()
        .lookup_payment(as_admin(pb::LookupPaymentRequest {
            payment_id: payment.payment_id.clone(),
        }))
        .await
        .expect("admin lookup")
        .into_inner();
    assert_eq!(
        looked_up.payment.map(|p| p.order_id),
        Some(order.order_id.clone())
    );
    let denied = shop
        .payments
        .clone()
        .lookup_payment(as_buyer(
            pb::LookupPaymentRequest {
                payment_id: payment.payment_id.clone(),
            },
            buyer,
        ))
        .await
        .expect_err("denied");
    assert_eq!(
        reason(&denied),
        (Code::PermissionDenied, "ROLE_REQUIRED".to_owned())
    );

    let refund = |request: tonic::Request<pb::RefundPaymentRequest>| {
        let mut client = shop.payments.clone();
        async move { client.refund_payment(request).await }
    };
    let valid = || pb::RefundPaymentRequest {
        payment_id: payment.payment_id.clone(),
        amount: None,
        reason: "goodwill".to_owned(),
        idempotency_key: Uuid::new_v4().to_string(),
    };
    let denied = refund(as_buyer(valid(), buyer)).await.expect_err("denied");
    assert_eq!(
        reason(&denied),
        (Code::PermissionDenied, "ROLE_REQUIRED".to_owned())
    );
    let unpaid = refund(as_admin(valid())).await.expect_err("not captured");
    assert_eq!(
        reason(&unpaid),
        (
            Code::FailedPrecondition,
            "ILLEGAL_STATE_TRANSITION".to_owned()
        )
    );
    let unknown = refund(as_admin(pb::RefundPaymentRequest {
        payment_id: Uuid::now_v7().to_string(),
        ..valid()
    }))
    .await
    .expect_err("unknown");
    assert_eq!(reason(&unknown).0, Code::NotFound);
    let bad = refund(as_admin(pb::RefundPaymentRequest {
        amount: yen(0),
        reason: String::new(),
        idempotency_key: String::new(),
        ..valid()
    }))
    .await
    .expect_err("invalid");
    assert_eq!(
        fields(&bad),
        ["reason", "idempotency_key", "amount.amount_minor"]
    );

    // Paid: partial refunds up to the amount, then REFUND_EXCEEDS_PAYMENT.
    assert_eq!(shop.press(&payment.payment_url, "pay").await, 200);
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    let key = Uuid::new_v4().to_string();
    let partial = pb::RefundPaymentRequest {
        amount: yen(400),
        idempotency_key: key.clone(),
        ..valid()
    };
    let admin = Uuid::now_v7();
    let first = refund(as_user(partial.clone(), admin, &[Role::Admin]))
        .await
        .expect("refunded")
        .into_inner();
    let replay = refund(as_user(partial.clone(), admin, &[Role::Admin]))
        .await
        .expect("replayed")
        .into_inner();
    assert_eq!(
        first.refund.as_ref().map(|r| &r.refund_id),
        replay.refund.as_ref().map(|r| &r.refund_id)
    );
    let reused = refund(as_user(
        pb::RefundPaymentRequest {
            amount: yen(300),
            ..partial
        },
        admin,
        &[Role::Admin],
    ))
    .await
    .expect_err("key reused");
    assert_eq!(
        reason(&reused),
        (
            Code::FailedPrecondition,
            "IDEMPOTENCY_KEY_REUSED".to_owned()
        )
    );
    let too_much = refund(as_admin(pb::RefundPaymentRequest {
        amount: yen(601),
        ..valid()
    }))
    .await
    .expect_err("too much");
    assert_eq!(
        reason(&too_much),
        (
            Code::FailedPrecondition,
            "REFUND_EXCEEDS_PAYMENT".to_owned()
        )
    );
    let rest = refund(as_admin(valid()))
        .await
        .expect("the rest")
        .into_inner();
    assert_eq!(
        rest.refund.and_then(|r| r.amount).map(|m| m.amount_minor),
        Some(600)
    );
    let after = rest.payment.expect("payment");
    assert_eq!(
        after.status,
        mercato_proto::mercato::common::v1::PaymentStatus::Refunded as i32
    );
    assert_eq!(after.refunds.len(), 2);
    assert_eq!(
        shop.outbox(&payment.payment_id, "payment.refunded").await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_rpcs_check_roles_and_ranges_and_payouts_need_stripe() {
    let shop = Shop::start().await;
    let buyer = Uuid::now_v7();
    let reconcile = |request| {
        let mut client = shop.payments.clone();
        async move { client.reconcile_payments(request).await }
    };
    let denied = reconcile(as_buyer(pb::ReconcilePaymentsRequest::default(), buyer))
        .await
        .expect_err("denied");
    assert_eq!(reason(&denied).0, Code::PermissionDenied);
    for (limit, older) in [(1_001, 0), (-1, 0), (0, -5), (0, 31 * 24 * 3_600)] {
        let error = reconcile(as_admin(pb::ReconcilePaymentsRequest {
            older_than: Some(prost_types::Duration {
                seconds: older,
                nanos: 0,
            }),
            limit,
        }))
        .await
        .expect_err("out of range");
        assert_eq!(reason(&error).0, Code::InvalidArgument, "{limit} {older}");
    }
    let search = shop
        .payments
        .clone()
        .search_payments(as_buyer(pb::SearchPaymentsRequest::default(), buyer))
        .await
        .expect_err("admins only");
    assert_eq!(reason(&search).0, Code::PermissionDenied);

    // Without STRIPE_SECRET_KEY there is no Connect: no account can be made, and nobody has
    // payouts (the reads still answer).
    let mut payouts = PayoutServiceClient::new(crate::support::channel(shop.payment().grpc_uri()));
    let listed = payouts
        .list_payouts(as_user(
            pb::ListPayoutsRequest::default(),
            buyer,
            &[Role::Seller],
        ))
        .await
        .expect("a seller lists their payouts")
        .into_inner();
    assert!(listed.payouts.is_empty());
    let refused = payouts
        .create_seller_account(as_user(
            pb::CreateSellerAccountRequest {
                country_code: "JP".to_owned(),
                return_url: "https://shop.example/seller".to_owned(),
                refresh_url: "https://shop.example/seller/refresh".to_owned(),
                idempotency_key: Uuid::new_v4().to_string(),
            },
            buyer,
            &[Role::Seller],
        ))
        .await
        .expect_err("no connect");
    assert_eq!(
        reason(&refused),
        (
            Code::FailedPrecondition,
            "SELLER_ACCOUNT_NOT_READY".to_owned()
        )
    );
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM seller_accounts")
        .fetch_one(shop.pool())
        .await
        .expect("count");
    assert_eq!(none, 0);
    let not_seller = payouts
        .list_payouts(as_buyer(pb::ListPayoutsRequest::default(), buyer))
        .await
        .expect_err("denied");
    assert_eq!(not_seller.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_history_pages_newest_first_with_tokens_bound_to_the_filter() {
    let shop = Shop::start().await;
    let user = Uuid::now_v7();
    for amount in [10, 20, 30, 40, 50] {
        shop.charge(user, amount).await;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = shop
            .wallets
            .clone()
            .list_ledger_entries(as_buyer(
                pb::ListLedgerEntriesRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    kinds: Vec::new(),
                },
                user,
            ))
            .await
            .expect("page")
            .into_inner();
        seen.extend(
            page.entries
                .iter()
                .map(|e| e.amount.as_ref().map_or(0, |m| m.amount_minor)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, [50, 40, 30, 20, 10]);

    let first = shop
        .wallets
        .clone()
        .list_ledger_entries(as_buyer(
            pb::ListLedgerEntriesRequest {
                page_size: 1,
                ..Default::default()
            },
            user,
        ))
        .await
        .expect("page")
        .into_inner();
    // The token does not work for another user, nor for other filters.
    for (who, kinds) in [(Uuid::now_v7(), Vec::new()), (user, vec![2])] {
        let error = shop
            .wallets
            .clone()
            .list_ledger_entries(as_buyer(
                pb::ListLedgerEntriesRequest {
                    page_size: 1,
                    page_token: first.next_page_token.clone(),
                    kinds,
                },
                who,
            ))
            .await
            .expect_err("token refused");
        assert_eq!(
            reason(&error),
            (Code::InvalidArgument, "INVALID_PAGE_TOKEN".to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_that_keeps_meeting_a_locked_wallet_is_retried_then_aborted_and_writes_nothing() {
    let shop = Shop::start_with(|settings| {
        settings.wallet.lock_timeout = std::time::Duration::from_millis(50);
    })
    .await;
    let user = Uuid::now_v7();
    shop.charge(user, 100).await;
    let attempts_before: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_entries")
        .fetch_one(shop.pool())
        .await
        .expect("count");

    // Another transaction holds the wallet for the whole call.
    let mut holder = shop.pool().begin().await.expect("transaction");
    sqlx::query("SELECT 1 FROM wallets WHERE user_id = $1 FOR UPDATE")
        .bind(user)
        .execute(&mut *holder)
        .await
        .expect("wallet locked");
    let error = charge(&shop, user, yen(50), "retry-key")
        .await
        .expect_err("the wallet stays locked");
    assert_eq!(
        reason(&error),
        (Code::Aborted, "IDEMPOTENT_REQUEST_IN_PROGRESS".to_owned())
    );
    holder.rollback().await.expect("lock released");
    assert_eq!(
        ledger_count(&shop).await,
        attempts_before,
        "nothing written"
    );

    // The same key then succeeds once.
    let done = charge(&shop, user, yen(50), "retry-key")
        .await
        .expect("charged");
    assert_eq!(
        done.wallet.and_then(|w| w.balance).map(|m| m.amount_minor),
        Some(150)
    );
    shop.assert_ledgers_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_created_for_an_order_the_order_service_does_not_know_collects_nothing() {
    use mercato_proto::mercato::events::v1::OrderCreated;
    use prost::Message as _;

    let shop = Shop::start().await;
    let buyer = Uuid::now_v7();
    shop.charge(buyer, 5_000).await;
    let order_id = Uuid::now_v7();
    let payload = OrderCreated {
        order_id: order_id.to_string(),
        user_id: buyer.to_string(),
        total: yen(1_000),
        payment_method: PaymentMethod::Points as i32,
        ..Default::default()
    };
    let envelope = mercato_messaging::envelope::new_envelope(
        "order.created",
        "order",
        order_id.to_string(),
        1,
        "order",
        Some(prost_types::Any {
            type_url: "type.googleapis.com/mercato.events.v1.OrderCreated".to_owned(),
            value: payload.encode_to_vec(),
        }),
    );
    shop.publish(&envelope).await;

    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(shop.pool())
            .await
            .expect("read")
    };
    crate::shop::eventually("the payment of the unknown order is cancelled", || async {
        status().await.as_deref() == Some("CANCELLED")
    })
    .await;
    assert_eq!(shop.balance(buyer).await, 5_000, "nothing debited");
    let paid: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'order.paid'")
            .fetch_one(shop.pool())
            .await
            .expect("count");
    assert_eq!(paid, 0);
    shop.assert_ledgers_consistent().await;
}
