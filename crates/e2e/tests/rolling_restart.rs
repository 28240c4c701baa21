//! A rolling restart under load: two replicas of every backend service (product and order
//! behind one Service address each, the others listed replica by replica), a stream of POINTS
//! and SANDBOX checkouts through the BFF, and meanwhile each replica of each service in turn
//! stopped through the path SIGTERM takes and replaced. No BFF call of the stream may fail, and
//! afterwards every order is FINISHED with one payment, one shipment, its stock committed, the
//! wallets equal to their ledgers, no dead letter and every outbox drained.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mercato_e2e::stack::{
    Backend, PATIENCE, SKU_PRICE, ScaledStack, Shop, Shopper, UNLIMITED_RATE_LIMITS, cart_checkout,
    jpy, seed_sku, status_of, with_token,
};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use uuid::Uuid;

/// Shoppers checking out at once; even ones pay with points, odd ones on the sandbox page.
const SHOPPERS: usize = 4;

/// Units of the one SKU on sale (more than the stream can buy).
const STOCK: i64 = 10_000;

/// Points each POINTS shopper is charged before the stream starts.
const POINTS: i64 = 1_000_000;

/// How long every order may take to finish once the roll is over.
const SETTLE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_service_under_checkouts_fails_no_call_and_loses_no_order() {
    let mut stack = ScaledStack::start(UNLIMITED_RATE_LIMITS).await;
    let sku = seed_sku(&stack.grpc_uri(Backend::Product, 0), STOCK).await;
    let channel = stack.shop().await;
    let mut shoppers = Vec::new();
    for index in 0..SHOPPERS {
        let mut shop = channel.clone();
        let shopper = shop.sign_up().await;
        let method = if index % 2 == 0 {
            let mut wallets = bff::wallet_service_client::WalletServiceClient::new(
                tonic::transport::Channel::from_shared(format!("http://{}", stack.bff_addr))
                    .expect("bff url")
                    .connect_lazy(),
            );
            wallets
                .charge_points(with_token(
                    bff::ChargePointsRequest {
                        amount: jpy(POINTS),
                        idempotency_key: Uuid::new_v4().to_string(),
                    },
                    &shopper.access_token,
                ))
                .await
                .expect("points charged");
            common::PaymentMethod::Points
        } else {
            common::PaymentMethod::Sandbox
        };
        shoppers.push((shopper, method));
    }

    let tally = Tally::default();
    let rolled = CancellationToken::new();
    let streams: Vec<_> = shoppers
        .iter()
        .cloned()
        .map(|(shopper, method)| {
            tokio::spawn(stream_checkouts(
                channel.clone(),
                shopper,
                method,
                sku.clone(),
                tally.clone(),
                rolled.clone(),
            ))
        })
        .collect();

    // Let the stream get going, then replace every replica of every service, one at a time:
    // stop it as SIGTERM would, let the stream place orders while its twin serves alone, and
    // start its replacement.
    tally.wait_for_orders(SHOPPERS).await;
    for backend in Backend::ALL {
        for slot in 0..2 {
            stack.stop_replica(backend, slot).await;
            tally.wait_for_orders(tally.orders() + 2 * SHOPPERS).await;
            stack.replace(backend, slot).await;
        }
    }
    // And a little more load on the fully replaced system.
    let after_roll = tally.orders();
    tally.wait_for_orders(after_roll + SHOPPERS).await;
    rolled.cancel();
    let mut orders = Vec::new();
    for stream in streams {
        orders.extend(stream.await.expect("a checkout stream ends"));
    }

    // Every order reaches FINISHED, read through the BFF as its shopper.
    let mut shop = channel.clone();
    let deadline = tokio::time::Instant::now() + SETTLE;
    for placed in &orders {
        loop {
            let answer = shop
                .orders
                .get_order(with_token(
                    bff::GetOrderRequest {
                        order_id: placed.order_id.clone(),
                    },
                    &placed.shopper.access_token,
                ))
                .await;
            let status = tally
                .record("GetOrder", answer)
                .map(|response| status_of(&response.into_inner().order.expect("an order")));
            if status == Some(common::OrderStatus::Finished) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {} ({:?}) is {status:?}, not FINISHED, {SETTLE:?} after the roll",
                placed.order_id,
                placed.method
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let failures = tally.failures();
    assert!(
        failures.is_empty(),
        "{} of {} BFF calls failed during the rolling restart, the first:\n{}",
        failures.len(),
        tally.calls(),
        failures[..failures.len().min(20)].join("\n")
    );
    assert_eq!(
        stack.connections_turned_away(),
        0,
        "a Service address sent a connection to a replica that no longer accepted"
    );
    // How many calls the stopping replicas turned away and the channels sent again depends on
    // the scheduler (none, if no call was in flight at a GOAWAY), so it is reported, not
    // asserted; the platform's replicas test asserts the counter where a resend is certain.
    let resent: f64 = mercato_platform::metrics::render()
        .lines()
        .filter(|line| line.starts_with("grpc_client_resent_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    eprintln!("{resent} calls were sent again during the roll");
    let points = orders
        .iter()
        .filter(|order| order.method == common::PaymentMethod::Points)
        .count();
    assert!(
        points > 0 && points < orders.len(),
        "both methods ran: {points} POINTS of {}",
        orders.len()
    );
    let ids: Vec<String> = orders.iter().map(|order| order.order_id.clone()).collect();
    let id_list = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");

    // One payment per order, settled, and one shipment per order, delivered.
    let payments = per_order(
        &stack.database_url(Backend::Payment),
        &format!(
            "SELECT order_id::text, count(*) FROM payments WHERE order_id IN ({id_list}) \
             GROUP BY order_id"
        ),
    )
    .await;
    let shipments = per_order(
        &stack.database_url(Backend::Process),
        &format!(
            "SELECT order_id::text, count(*) FROM shipments WHERE order_id IN ({id_list}) \
             GROUP BY order_id"
        ),
    )
    .await;
    for id in &ids {
        assert_eq!(payments.get(id), Some(&1), "payments of order {id}");
        assert_eq!(shipments.get(id), Some(&1), "shipments of order {id}");
    }
    assert_eq!(
        scalar(
            &stack.database_url(Backend::Payment),
            "SELECT count(*) FROM payments"
        )
        .await,
        i64::try_from(ids.len()).expect("a count"),
        "no payment without an order of the stream"
    );

    // Each POINTS order debited its wallet once; every wallet equals its ledger.
    let points_list = orders
        .iter()
        .filter(|order| order.method == common::PaymentMethod::Points)
        .map(|order| format!("'{}'", order.order_id))
        .collect::<Vec<_>>()
        .join(",");
    let debits = per_order(
        &stack.database_url(Backend::Payment),
        &format!(
            "SELECT order_id::text, count(*) FROM ledger_entries \
             WHERE order_id IN ({points_list}) GROUP BY order_id"
        ),
    )
    .await;
    for order in orders
        .iter()
        .filter(|order| order.method == common::PaymentMethod::Points)
    {
        assert_eq!(
            debits.get(&order.order_id),
            Some(&1),
            "ledger entries of POINTS order {}",
            order.order_id
        );
    }
    assert_eq!(
        scalar(
            &stack.database_url(Backend::Payment),
            "SELECT count(*) FROM wallets w WHERE w.balance < 0 OR w.balance <> \
             coalesce((SELECT sum(l.amount) FROM ledger_entries l WHERE l.user_id = w.user_id), 0)"
        )
        .await,
        0,
        "every wallet's balance equals the sum of its ledger"
    );
    let spent: i64 = scalar(
        &stack.database_url(Backend::Payment),
        &format!(
            "SELECT coalesce(sum(-amount), 0)::bigint FROM ledger_entries \
             WHERE order_id IN ({points_list})"
        ),
    )
    .await;
    assert_eq!(
        spent,
        i64::try_from(points).expect("a count") * SKU_PRICE,
        "the POINTS orders spent their totals once"
    );

    // The stock of every order was committed, and only that.
    let units = i64::try_from(ids.len()).expect("a count");
    assert_eq!(
        scalar(
            &stack.database_url(Backend::Product),
            &format!("SELECT on_hand::bigint FROM stock_levels WHERE sku_id = '{sku}'")
        )
        .await,
        STOCK - units,
        "on hand fell by the units ordered"
    );
    assert_eq!(
        scalar(
            &stack.database_url(Backend::Product),
            &format!("SELECT reserved::bigint FROM stock_levels WHERE sku_id = '{sku}'")
        )
        .await,
        0,
        "nothing is left reserved"
    );
    assert_eq!(
        scalar(
            &stack.database_url(Backend::Product),
            &format!(
                "SELECT count(*) FROM reservations WHERE order_id IN ({id_list}) \
                 AND status = 'COMMITTED'"
            )
        )
        .await,
        units,
        "one committed reservation per order"
    );

    // Nothing dead-lettered, and every outbox drains.
    let dead: Vec<_> = stack
        .dead_letters()
        .await
        .into_iter()
        .filter(|(_, messages)| *messages > 0)
        .collect();
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    // No queue is bound for the announcements (nothing in the system consumes them yet): the
    // relays record them as published all the same, exactly one per fact, none doubled by the
    // restarts; every outbox then drains completely.
    for (backend, event_type, expected) in [
        (Backend::User, "user.registered", SHOPPERS),
        (Backend::Order, "order.awaiting_payment", ids.len()),
        (Backend::Order, "order.shipped", ids.len()),
        (Backend::Order, "order.finished", ids.len()),
    ] {
        assert_eq!(
            scalar(
                &stack.database_url(backend),
                &format!("SELECT count(*) FROM outbox WHERE event_type = '{event_type}'")
            )
            .await,
            i64::try_from(expected).expect("a count"),
            "{event_type} events in the {} outbox",
            backend.name()
        );
    }
    for backend in Backend::ALL {
        let url = stack.database_url(backend);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let backlog = scalar(
                &url,
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            )
            .await;
            if backlog == 0 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let kinds = per_order(
                    &url,
                    "SELECT event_type, count(*) FROM outbox WHERE published_at IS NULL \
                     GROUP BY event_type",
                )
                .await;
                panic!(
                    "the {} outbox still holds {backlog} unpublished events: {kinds:?}",
                    backend.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    stack.stop().await;
}

/// An order the stream placed.
#[derive(Debug, Clone)]
struct Placed {
    order_id: String,
    shopper: Shopper,
    method: common::PaymentMethod,
}

/// Every BFF call of the test: how many, and each failure with what was called.
#[derive(Debug, Clone, Default)]
struct Tally {
    inner: Arc<Mutex<TallyInner>>,
    placed: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct TallyInner {
    calls: usize,
    orders: usize,
    failures: Vec<String>,
}

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, TallyInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one call; a failure is kept and yields `None`.
    fn record<T>(&self, what: &str, answer: Result<T, tonic::Status>) -> Option<T> {
        let mut inner = self.lock();
        inner.calls += 1;
        match answer {
            Ok(value) => Some(value),
            Err(status) => {
                inner
                    .failures
                    .push(format!("{what}: {:?} {}", status.code(), status.message()));
                None
            }
        }
    }

    fn placed(&self) {
        self.lock().orders += 1;
        self.placed.notify_waiters();
    }

    fn orders(&self) -> usize {
        self.lock().orders
    }

    fn calls(&self) -> usize {
        self.lock().calls
    }

    fn failures(&self) -> Vec<String> {
        self.lock().failures.clone()
    }

    /// Waits until the stream has placed `count` orders.
    async fn wait_for_orders(&self, count: usize) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let placed = self.placed.notified();
                if self.orders() >= count {
                    return;
                }
                placed.await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the stream placed {} orders, not {count}; the first failures: {:?}",
                self.orders(),
                self.failures().iter().take(20).collect::<Vec<_>>()
            )
        });
    }
}

/// One shopper checking out one unit at a time until `rolled`: add to the cart, create the
/// order, and for SANDBOX read the payment and press Pay, as the storefront does.
async fn stream_checkouts(
    mut shop: Shop,
    shopper: Shopper,
    method: common::PaymentMethod,
    sku: String,
    tally: Tally,
    rolled: CancellationToken,
) -> Vec<Placed> {
    let mut placed = Vec::new();
    while !rolled.is_cancelled() {
        let added = shop
            .carts
            .add_cart_item(with_token(
                bff::AddCartItemRequest {
                    sku_id: sku.clone(),
                    quantity: 1,
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &shopper.access_token,
            ))
            .await;
        if tally.record("AddCartItem", added).is_none() {
            continue;
        }
        let created = shop
            .orders
            .create_order(with_token(
                cart_checkout(method, SKU_PRICE),
                &shopper.access_token,
            ))
            .await;
        let Some(order) = tally
            .record("CreateOrder", created)
            .and_then(|response| response.into_inner().order)
        else {
            continue;
        };
        placed.push(Placed {
            order_id: order.order_id.clone(),
            shopper: shopper.clone(),
            method,
        });
        tally.placed();
        if method == common::PaymentMethod::Sandbox {
            pay_on_the_sandbox(&mut shop, &shopper, &order.order_id, &tally).await;
        }
    }
    placed
}

/// Reads the order's payment through the BFF until it is attached (PAYMENT_NOT_READY before
/// that is an answer, not a failure) and presses Pay on its sandbox page.
async fn pay_on_the_sandbox(shop: &mut Shop, shopper: &Shopper, order_id: &str, tally: &Tally) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let payment_url = loop {
        let answer = shop
            .orders
            .get_order_payment(with_token(
                bff::GetOrderPaymentRequest {
                    order_id: order_id.to_owned(),
                },
                &shopper.access_token,
            ))
            .await;
        let answer = match answer {
            Err(status) if status.code() == Code::FailedPrecondition => {
                tally.record::<()>("GetOrderPayment", Ok(()));
                None
            }
            other => tally.record("GetOrderPayment", other).map(|response| {
                response
                    .into_inner()
                    .payment
                    .expect("a payment")
                    .payment_url
            }),
        };
        if let Some(url) = answer {
            break url;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order_id} never got a payment"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    press_pay(&payment_url).await;
}

/// What a shopper does on the sandbox page, again if the payment replica serving it is being
/// replaced (the page is not a BFF call): load it, post its Pay form; done once the post is
/// answered 200 or the page no longer offers Pay.
async fn press_pay(payment_url: &str) {
    mercato_bff::app::install_crypto_provider();
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let page = match http.get(payment_url).send().await {
            Ok(page) if page.status().is_success() => page.text().await.ok(),
            _ => None,
        };
        if let Some(html) = page {
            let action = html
                .split("<form")
                .skip(1)
                .find(|form| form.contains(">Pay</button>"))
                .and_then(|form| form.split("action=\"").nth(1))
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned);
            let Some(action) = action else {
                return;
            };
            let url = reqwest::Url::parse(payment_url)
                .expect("the payment url is a url")
                .join(&action)
                .expect("the form action resolves against the page");
            if let Ok(response) = http.post(url).send().await
                && response.status().as_u16() == 200
            {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sandbox page {payment_url} never took the payment"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `SELECT key, count` rows as a map.
async fn per_order(database_url: &str, sql: &str) -> HashMap<String, i64> {
    let mut connection = sqlx::PgConnection::connect(database_url)
        .await
        .expect("a database connection");
    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    rows.into_iter().collect()
}

/// A query's one `bigint`.
async fn scalar(database_url: &str, sql: &str) -> i64 {
    let mut connection = sqlx::PgConnection::connect(database_url)
        .await
        .expect("a database connection");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}
