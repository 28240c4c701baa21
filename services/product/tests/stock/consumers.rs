//! `order.cancelled` and `order.expired` give an order's stock back, once.

use mercato_messaging::envelope::new_envelope;
use mercato_messaging::{EventEnvelope, Namespace, Publisher};
use mercato_product::clock::Clock;
use mercato_product::stock::events;
use mercato_product::testing::{RunningProduct, TestEnv};
use mercato_proto::mercato::common::v1::OrderStatus;
use mercato_proto::mercato::events::v1::{OrderCancelled, OrderExpired};
use mercato_proto::mercato::product::v1 as pb;
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

fn cancelled(order_id: Uuid, paid: bool) -> EventEnvelope {
    let payload = OrderCancelled {
        order_id: order_id.to_string(),
        user_id: Uuid::now_v7().to_string(),
        previous_status: if paid {
            OrderStatus::Paid as i32
        } else {
            OrderStatus::Pending as i32
        },
        refund_required: paid,
        ..OrderCancelled::default()
    };
    envelope(
        events::ORDER_CANCELLED,
        "OrderCancelled",
        order_id,
        payload.encode_to_vec(),
    )
}

fn expired(order_id: Uuid) -> EventEnvelope {
    let payload = OrderExpired {
        order_id: order_id.to_string(),
        ..OrderExpired::default()
    };
    envelope(
        events::ORDER_EXPIRED,
        "OrderExpired",
        order_id,
        payload.encode_to_vec(),
    )
}

fn envelope(event_type: &str, type_name: &str, order_id: Uuid, value: Vec<u8>) -> EventEnvelope {
    new_envelope(
        event_type,
        "order",
        order_id.to_string(),
        2,
        "order",
        Some(prost_types::Any {
            type_url: format!("type.googleapis.com/mercato.events.v1.{type_name}"),
            value,
        }),
    )
}

struct Bus {
    publisher: Publisher,
}

impl Bus {
    fn new(env: &TestEnv, service: &RunningProduct) -> Self {
        let namespace = Namespace::new(env.broker().namespace()).expect("valid namespace");
        Self {
            publisher: Publisher::new(service.context.connector.clone(), namespace),
        }
    }

    /// Publishes, retrying while the consumer has not bound its queue yet (publishes are
    /// mandatory: an unroutable event is refused).
    async fn publish(&self, envelope: &EventEnvelope) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.publisher.publish(envelope).await {
                Ok(()) => return,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "publish failed: {error}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn processed(pool: &PgPool, event_id: &str) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM inbox WHERE message_id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .map(|n| n == 1)
        .unwrap_or(false)
}

async fn status(
    client: &mut pb::stock_service_client::StockServiceClient<tonic::transport::Channel>,
    order_id: Uuid,
) -> i32 {
    client
        .get_reservation(internal(pb::GetReservationRequest {
            order_id: order_id.to_string(),
        }))
        .await
        .expect("get reservation")
        .into_inner()
        .reservation
        .expect("reservation")
        .status
}

#[tokio::test]
async fn order_cancelled_releases_the_reservation_once() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[5]).await;
    let sku = product.skus[0];
    let mut client = client(&service);
    let bus = Bus::new(&env, &service);

    let order_id = Uuid::now_v7();
    reserve_ok(&mut client, order_id, &[(sku, 3)]).await;
    let event = cancelled(order_id, false);
    bus.publish(&event).await;
    eventually("the reservation to be released", || {
        let mut client = client.clone();
        async move { status(&mut client, order_id).await == pb::ReservationStatus::Released as i32 }
    })
    .await;
    assert_eq!(stock(&mut client, sku).await.reserved, 0);
    let before = counts(pool).await;

    // The same delivery again (the inbox drops it) and a new event for the same order (the
    // status guard makes it a no-op).
    bus.publish(&event).await;
    let late = expired(order_id);
    bus.publish(&late).await;
    eventually("the later event to be processed", || {
        processed(pool, &late.event_id)
    })
    .await;
    assert_eq!(counts(pool).await, before);
    let level = stock(&mut client, sku).await;
    assert_eq!((level.on_hand, level.reserved), (5, 0));
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn a_paid_order_cancelled_before_shipping_is_restocked() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[5]).await;
    let sku = product.skus[0];
    let mut client = client(&service);
    let bus = Bus::new(&env, &service);

    let order_id = Uuid::now_v7();
    reserve_ok(&mut client, order_id, &[(sku, 2)]).await;
    client
        .commit_reservation(internal(pb::CommitReservationRequest {
            order_id: order_id.to_string(),
        }))
        .await
        .expect("commit");
    assert_eq!(stock(&mut client, sku).await.on_hand, 3);
    bus.publish(&cancelled(order_id, true)).await;
    eventually("the reservation to be returned", || {
        let mut client = client.clone();
        async move { status(&mut client, order_id).await == pb::ReservationStatus::Returned as i32 }
    })
    .await;
    assert_eq!(stock(&mut client, sku).await.on_hand, 5);
    service.stop().await.expect("the service stops cleanly");
}
