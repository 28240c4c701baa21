//! The broker is down during checkout: orders are still created (their events wait in the
//! outbox), and once the broker is back each `order.created` is published exactly once.

use std::collections::HashMap;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use mercato_messaging::{EventEnvelope, Namespace};
use mercato_proto::mercato::common::v1::OrderStatus;
use prost::Message as _;
use uuid::Uuid;

use crate::shop::{PATIENCE, Shop, explicit, key, status_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_while_the_broker_is_down_publish_their_events_once_it_returns() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 100).await;

    // A sink bound to order.created, on a direct connection the outage does not touch.
    let broker = shop.product_env.broker();
    let connection = broker.connect().await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let namespace = Namespace::new(broker.namespace()).expect("namespace");
    mercato_messaging::topology::declare_exchanges(&channel, &namespace)
        .await
        .expect("exchanges");
    let sink = broker.name("created-sink");
    broker.track_queue(sink.clone());
    channel
        .queue_declare(
            sink.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("sink queue");
    channel
        .queue_bind(
            sink.as_str().into(),
            namespace.events_exchange().as_str().into(),
            "order.created".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("sink bound");

    shop.broker.cut().await;
    let buyer = Uuid::now_v7();
    let mut placed = Vec::new();
    for _ in 0..10 {
        let order = shop.place(buyer, explicit(&key(), &[(&mug, 1)])).await;
        assert_eq!(status_of(&order), OrderStatus::Pending);
        placed.push(order.order_id);
    }
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(shop.pool())
        .await
        .expect("unpublished rows");
    assert_eq!(waiting, 10, "the events wait in the outbox");

    shop.broker.restore();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < placed.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} order.created arrived",
            seen.len(),
            placed.len()
        );
        match channel
            .basic_get(sink.as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        {
            Some(message) => {
                let envelope =
                    EventEnvelope::decode(message.delivery.data.as_slice()).expect("an envelope");
                *seen.entry(envelope.aggregate_id).or_insert(0) += 1;
                message
                    .delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("ack");
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    // Anything published twice would be in the queue by the time every row is marked.
    let unpublished_wait = tokio::time::Instant::now() + PATIENCE;
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(shop.pool())
                .await
                .expect("unpublished rows");
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < unpublished_wait,
            "{left} rows never published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    while let Some(message) = channel
        .basic_get(sink.as_str().into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
    {
        let envelope =
            EventEnvelope::decode(message.delivery.data.as_slice()).expect("an envelope");
        *seen.entry(envelope.aggregate_id).or_insert(0) += 1;
    }
    let mut expected: Vec<String> = placed.clone();
    expected.sort();
    let mut got: Vec<String> = seen.keys().cloned().collect();
    got.sort();
    assert_eq!(got, expected, "every order's event, and no other");
    assert!(
        seen.values().all(|count| *count == 1),
        "each published exactly once: {seen:?}"
    );
}
