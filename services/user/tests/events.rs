//! The outbox relay publishes `user.registered` on the bus after the registration commits.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use mercato_messaging::{EventEnvelope, Namespace};
use mercato_proto::mercato::events::v1::UserRegistered;
use mercato_user::testing::TestEnv;
use prost::Message as _;

#[tokio::test]
async fn registrations_are_published_as_user_registered() {
    let env = TestEnv::new().await.expect("test resources");
    let broker = env.broker();
    let namespace = Namespace::new(broker.namespace()).expect("valid namespace");
    let connection = broker.connect().await.expect("broker connects");
    let channel = connection.create_channel().await.expect("channel");
    mercato_messaging::topology::declare_exchanges(&channel, &namespace)
        .await
        .expect("declare exchanges");
    let queue = broker.name("user-registered-sink");
    broker.track_queue(queue.clone());
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare the sink");
    channel
        .queue_bind(
            queue.as_str().into(),
            namespace.events_exchange().as_str().into(),
            "user.registered".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind the sink");
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "user-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume the sink");

    let service = env.start(|_| {}).await.expect("service starts");
    let email = email();
    let registered = register(&service.grpc_uri(), &email).await;

    let delivery = tokio::time::timeout(Duration::from_secs(20), deliveries.next())
        .await
        .expect("user.registered arrives within 20s")
        .expect("the consumer stays open")
        .expect("a delivery");
    let envelope = EventEnvelope::decode(delivery.data.as_slice()).expect("an envelope");
    assert_eq!(envelope.event_type, "user.registered");
    assert_eq!(envelope.producer, "user");
    let payload = envelope.payload.expect("a payload");
    assert!(
        payload
            .type_url
            .ends_with("mercato.events.v1.UserRegistered")
    );
    let event = UserRegistered::decode(payload.value.as_slice()).expect("a UserRegistered");
    assert_eq!(event.user_id, user_id(&registered).to_string());
    assert_eq!(event.email, email);
    assert!(!event.external);
    delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    service.stop().await.expect("clean stop");
}
