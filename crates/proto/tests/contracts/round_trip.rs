//! Real messages survive the wire format, including an event payload packed in its envelope.

use mercato_proto::mercato::{common, events};
use prost::Message;

#[test]
fn money_round_trips_through_the_wire_format() {
    let price = common::v1::Money {
        currency_code: "JPY".to_owned(),
        amount_minor: 1_200,
    };
    let decoded = common::v1::Money::decode(price.encode_to_vec().as_slice())
        .expect("an encoded Money decodes");
    assert_eq!(decoded, price);
}

#[test]
fn event_envelope_carries_its_payload_as_any() {
    let payload = events::v1::OrderPaid {
        order_id: "0194f7a2-6c1e-7c3a-9d2b-5a8e4f1c2b3d".to_owned(),
        payment_method: common::v1::PaymentMethod::Points.into(),
        amount: Some(common::v1::Money {
            currency_code: "JPY".to_owned(),
            amount_minor: 3_400,
        }),
        lines: vec![events::v1::OrderLineSnapshot {
            sku_id: "0194f7a2-7000-7000-8000-000000000001".to_owned(),
            quantity: 2,
            ..Default::default()
        }],
        ..Default::default()
    };
    let envelope = events::v1::EventEnvelope {
        event_id: "0194f7a2-8000-7000-8000-000000000002".to_owned(),
        event_type: "order.paid".to_owned(),
        aggregate_type: "payment".to_owned(),
        aggregate_version: 3,
        producer: "payment".to_owned(),
        payload: Some(prost_types::Any {
            type_url: "type.googleapis.com/mercato.events.v1.OrderPaid".to_owned(),
            value: payload.encode_to_vec(),
        }),
        ..Default::default()
    };

    let decoded = events::v1::EventEnvelope::decode(envelope.encode_to_vec().as_slice())
        .expect("an encoded envelope decodes");
    assert_eq!(decoded, envelope);
    let any = decoded.payload.expect("the envelope keeps its payload");
    assert_eq!(
        any.type_url.rsplit_once('/').map(|(_, name)| name),
        Some("mercato.events.v1.OrderPaid")
    );
    let unpacked =
        events::v1::OrderPaid::decode(any.value.as_slice()).expect("the payload decodes");
    assert_eq!(unpacked, payload);
}
