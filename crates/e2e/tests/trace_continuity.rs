//! Trace continuity through one whole checkout, read from the spans every service exported to a
//! test-owned OTLP collector, starting where an operator starts: the `x-trace-id` the BFF
//! answered the browser's CreateOrder with.
//!
//! - The checkout trace: BFF CreateOrder (server, the root) → its client call → order
//!   CreateOrder (server) → product ReserveStock (client, server); order's `order.created`
//!   (producer) → payment's consumer → order AttachPayment (client, server).
//! - The settlement: the sandbox Pay button's webhook span starts a trace of its own (a provider
//!   sends no trace context) and links to the span the payment was created in; in that trace,
//!   `order.paid` (producer) → order's and process's consumers → the shipment worker's
//!   CommitReservation, MarkOrderShipped and MarkOrderFinished (client, server).
//! - A settlement whose webhook never came: a second checkout paid at the provider only, settled
//!   by an operator's ReconcilePayments; its `payment.reconcile` span links to that payment's
//!   creation likewise, and the same `order.paid` → process chain runs below it.
//!
//! Every edge is a real one (`child.parent_span_id == parent.span_id` in the same trace, possibly
//! through internal spans of the service in between), and every asserted span has its kind and
//! the semantic-convention attributes (`rpc.*`, `messaging.*`).
//!
//! One test in its own binary: the subscriber and the tracer provider are process-global.

use std::time::Duration;

use mercato_e2e::collector::{CollectedSpan, Collector, SpanSet};
use mercato_e2e::stack::{PATIENCE, Stack, StackOptions, press, seed_sku};
use mercato_e2e::telemetry::ProcessTelemetry;
use mercato_payment::provider::sandbox::Outcome;
use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::payment::v1 as payment_pb;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_one_trace_and_its_settlement_a_linked_one_down_to_the_finished_order() {
    let collector = Collector::start().await;
    let telemetry = ProcessTelemetry::install(Some(&collector.endpoint()), "info");
    let stack = Stack::start(StackOptions::default()).await;
    let bus = Bus {
        exchange: format!("{}.mercato.events", stack.namespace),
        payment_queue: stack.queue("payment", "order-events"),
        order_queue: stack.queue("order", "payment-outcomes"),
        process_queue: stack.queue("process", "order-paid"),
    };

    let mut shop = stack.shop().await;
    let sku = seed_sku(&stack.products.grpc_uri(), 5).await;
    let shopper = shop.sign_up().await;
    let (placed, trace_id) = shop
        .checkout(&shopper, &sku, 1, common::PaymentMethod::Sandbox)
        .await;
    let payment = shop.payment(&shopper, &placed.order_id).await;
    assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    shop.watch_until(&shopper, &placed.order_id, common::OrderStatus::Finished)
        .await;

    // The second checkout: paid at the provider, its webhook lost, settled by reconciliation.
    let (missed, missed_trace_id) = shop
        .checkout(&shopper, &sku, 1, common::PaymentMethod::Sandbox)
        .await;
    let missed_payment = shop.payment(&shopper, &missed.order_id).await;
    settle_without_webhook(&stack, &missed_payment.payment_id).await;
    shop.watch_until(&shopper, &missed.order_id, common::OrderStatus::Finished)
        .await;
    drop(shop);
    // Every span has ended once every service has stopped.
    stack.stop().await;
    let spans = collect(&collector, &telemetry, 2).await;

    // The checkout trace, from the id the browser got.
    assert_eq!(
        trace_id.len(),
        32,
        "x-trace-id is a W3C trace id: {trace_id}"
    );
    let creation = checkout_trace(&spans, &bus, &trace_id);

    // The settlement: a trace of its own, linked to where the payment was created.
    let webhook = one(&spans, "the sandbox payment's webhook span", |span| {
        span.name == "payment.webhook"
            && span.attribute("event.type") == Some("payment_intent.succeeded")
    });
    assert_ne!(webhook.trace_id, trace_id, "{}", webhook.describe());
    assert!(webhook.is_root(), "{}", webhook.describe());
    assert_links_to(&spans, webhook, &creation, &trace_id);
    fulfilment_below(&spans, &bus, webhook);

    // The missed webhook: the reconciliation's span links to its payment's creation and the
    // fulfilment runs below it.
    let missed_creation = checkout_trace(&spans, &bus, &missed_trace_id);
    let reconcile = one(&spans, "the reconciliation's settlement span", |span| {
        span.name == "payment.reconcile"
    });
    assert_eq!(
        reconcile.attribute("payment.id"),
        Some(missed_payment.payment_id.as_str()),
        "{}",
        reconcile.describe()
    );
    assert_ne!(
        reconcile.trace_id,
        missed_trace_id,
        "{}",
        reconcile.describe()
    );
    assert_links_to(&spans, reconcile, &missed_creation, &missed_trace_id);
    fulfilment_below(&spans, &bus, reconcile);
}

/// The checkout trace `trace_id` from the BFF's CreateOrder down to the payment service's
/// AttachPayment call: the spans a settlement must link to (payment consumer to AttachPayment).
fn checkout_trace<'a>(spans: &'a SpanSet, bus: &Bus, trace_id: &str) -> Vec<&'a CollectedSpan> {
    let bff_create = one(spans, "the BFF's CreateOrder server span", |span| {
        span.trace_id == trace_id
            && is_rpc(
                span,
                SpanKind::Server,
                "mercato.bff.v1.OrderService",
                "CreateOrder",
            )
    });
    assert!(bff_create.is_root(), "the browser sent no trace context");
    let create_call = rpc_child(
        spans,
        bff_create,
        "mercato.order.v1.OrderService",
        "CreateOrder",
    );
    let order_create = rpc_server(spans, create_call);
    let reserve_call = rpc_below(
        spans,
        order_create,
        "mercato.product.v1.StockService",
        "ReserveStock",
    );
    rpc_server(spans, reserve_call);
    let created = publish_below(spans, order_create, bus, "order.created");
    let payment_consume = consume(spans, created, bus, &bus.payment_queue);
    let attach_call = rpc_below(
        spans,
        payment_consume,
        "mercato.order.v1.OrderService",
        "AttachPayment",
    );
    rpc_server(spans, attach_call);
    chain(spans, payment_consume, attach_call)
}

/// `settlement` links to one of the spans of the payment's `creation`.
fn assert_links_to(
    spans: &SpanSet,
    settlement: &CollectedSpan,
    creation: &[&CollectedSpan],
    trace_id: &str,
) {
    assert!(
        settlement.links.iter().any(|(trace, span)| {
            creation
                .iter()
                .any(|on_path| &on_path.trace_id == trace && &on_path.span_id == span)
        }),
        "the settlement span {} links to the payment's creation, one of {:?}\n{}",
        settlement.describe(),
        creation.iter().map(|span| &span.name).collect::<Vec<_>>(),
        spans.render_trace(trace_id)
    );
}

/// `order.paid` published below `settlement`, consumed by the order and process services, and
/// the shipment worker's calls below the process service's consumer.
fn fulfilment_below(spans: &SpanSet, bus: &Bus, settlement: &CollectedSpan) {
    let paid = publish_below(spans, settlement, bus, "order.paid");
    consume(spans, paid, bus, &bus.order_queue);
    let process_consume = consume(spans, paid, bus, &bus.process_queue);
    for (service, method) in [
        ("mercato.product.v1.StockService", "CommitReservation"),
        ("mercato.order.v1.OrderService", "MarkOrderShipped"),
        ("mercato.order.v1.OrderService", "MarkOrderFinished"),
    ] {
        let call = rpc_below(spans, process_consume, service, method);
        rpc_server(spans, call);
    }
}

/// The buyer pays at the provider (the sandbox's Pay button, minus the webhook it would send);
/// then an operator's ReconcilePayments settles it.
async fn settle_without_webhook(stack: &Stack, payment_id: &str) {
    let payment_id: uuid::Uuid = payment_id.parse().expect("a payment id");
    let intent: String =
        sqlx::query_scalar("SELECT provider_payment_id FROM payments WHERE payment_id = $1")
            .bind(payment_id)
            .fetch_one(&stack.payments.context.pool)
            .await
            .expect("the payment's intent");
    stack
        .payments
        .context
        .sandbox
        .complete(&intent, Outcome::Succeed)
        .await
        .expect("the intent is paid at the provider");
    let mut payments = payment_pb::payment_service_client::PaymentServiceClient::connect(
        stack.payments.grpc_uri(),
    )
    .await
    .expect("the payment service");
    let mut request = tonic::Request::new(payment_pb::ReconcilePaymentsRequest {
        older_than: Some(prost_types::Duration {
            seconds: 0,
            nanos: 0,
        }),
        limit: 0,
    });
    Principal::new(uuid::Uuid::now_v7(), [Role::Admin]).write_metadata(request.metadata_mut());
    let report = payments
        .reconcile_payments(request)
        .await
        .expect("reconciliation runs")
        .into_inner();
    assert_eq!(report.succeeded_count, 1, "{report:?}");
}

/// The bus names of the stack.
struct Bus {
    exchange: String,
    payment_queue: String,
    order_queue: String,
    process_queue: String,
}

/// Flushes until the last span of each of `checkouts` (order's MarkOrderFinished server span)
/// arrived.
async fn collect(collector: &Collector, telemetry: &ProcessTelemetry, checkouts: usize) -> SpanSet {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        telemetry.flush().await;
        let spans = SpanSet::new(collector.spans());
        let finished = spans
            .all()
            .iter()
            .filter(|span| {
                is_rpc(
                    span,
                    SpanKind::Server,
                    "mercato.order.v1.OrderService",
                    "MarkOrderFinished",
                )
            })
            .count();
        if finished >= checkouts {
            return spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "MarkOrderFinished was never exported; {} spans",
            spans.all().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The only span matching `matches`.
fn one<'a>(
    spans: &'a SpanSet,
    what: &str,
    matches: impl Fn(&CollectedSpan) -> bool,
) -> &'a CollectedSpan {
    let found: Vec<_> = spans.all().iter().filter(|span| matches(span)).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one {what}: {:#?}",
        found.iter().map(|span| span.describe()).collect::<Vec<_>>()
    );
    found[0]
}

fn is_rpc(span: &CollectedSpan, kind: SpanKind, service: &str, method: &str) -> bool {
    span.kind == kind
        && span.attribute("rpc.service") == Some(service)
        && span.attribute("rpc.method") == Some(method)
}

/// Checks the RPC conventions of a span known to be `kind` for `service/method`, answered OK.
fn assert_rpc(span: &CollectedSpan, kind: SpanKind, service: &str, method: &str) {
    assert_eq!(span.kind, kind, "{}", span.describe());
    assert_eq!(span.name, format!("{service}/{method}"));
    assert_eq!(
        span.attribute("rpc.system"),
        Some("grpc"),
        "{}",
        span.describe()
    );
    assert_eq!(span.attribute("rpc.service"), Some(service));
    assert_eq!(span.attribute("rpc.method"), Some(method));
    assert_eq!(
        span.attribute("rpc.grpc.status_code"),
        Some("0"),
        "{} answered OK",
        span.describe()
    );
}

/// Whether `span` is below `ancestor` in its trace with nothing but internal spans (the same
/// service's own work) in between.
fn is_below(spans: &SpanSet, span: &CollectedSpan, ancestor: &CollectedSpan) -> bool {
    let mut current = span;
    loop {
        if current.is_child_of(ancestor) {
            return true;
        }
        match spans.parent(current) {
            Some(parent) if parent.kind == SpanKind::Internal => current = parent,
            _ => return false,
        }
    }
}

/// The spans from `top` down to `bottom` (both included); `bottom` must be below `top`.
fn chain<'a>(
    spans: &'a SpanSet,
    top: &'a CollectedSpan,
    bottom: &'a CollectedSpan,
) -> Vec<&'a CollectedSpan> {
    let mut path = vec![bottom];
    let mut current = bottom;
    while current.span_id != top.span_id {
        current = spans
            .parent(current)
            .unwrap_or_else(|| panic!("{} is not below {}", bottom.describe(), top.describe()));
        path.push(current);
    }
    path
}

/// The only successful client call of `service/method` directly under `parent`.
fn rpc_child<'a>(
    spans: &'a SpanSet,
    parent: &'a CollectedSpan,
    service: &str,
    method: &str,
) -> &'a CollectedSpan {
    let call = one(
        spans,
        &format!("{method} call under {}", parent.name),
        |span| {
            span.is_child_of(parent)
                && is_rpc(span, SpanKind::Client, service, method)
                && span.attribute("rpc.grpc.status_code") == Some("0")
        },
    );
    assert_rpc(call, SpanKind::Client, service, method);
    call
}

/// The only successful client call of `service/method` below `ancestor` (through the calling
/// service's internal spans).
fn rpc_below<'a>(
    spans: &'a SpanSet,
    ancestor: &'a CollectedSpan,
    service: &str,
    method: &str,
) -> &'a CollectedSpan {
    let call = one(
        spans,
        &format!("{method} call below {}", ancestor.name),
        |span| {
            is_rpc(span, SpanKind::Client, service, method)
                && span.attribute("rpc.grpc.status_code") == Some("0")
                && is_below(spans, span, ancestor)
        },
    );
    assert_rpc(call, SpanKind::Client, service, method);
    call
}

/// The server span `call` caused: its direct child, for the same method.
fn rpc_server<'a>(spans: &'a SpanSet, call: &'a CollectedSpan) -> &'a CollectedSpan {
    let service = call.attribute("rpc.service").unwrap_or_default();
    let method = call.attribute("rpc.method").unwrap_or_default();
    let server = one(spans, &format!("{service}/{method} server span"), |span| {
        span.is_child_of(call) && span.kind == SpanKind::Server
    });
    assert_rpc(server, SpanKind::Server, service, method);
    server
}

/// Checks the messaging conventions shared by producer and consumer spans of `event_type`.
fn assert_messaging(span: &CollectedSpan, bus: &Bus, kind: SpanKind, event_type: &str) {
    assert_eq!(span.kind, kind, "{}", span.describe());
    assert_eq!(
        span.attribute("messaging.system"),
        Some("rabbitmq"),
        "{}",
        span.describe()
    );
    assert_eq!(
        span.attribute("messaging.destination.name"),
        Some(bus.exchange.as_str()),
        "{}",
        span.describe()
    );
    assert_eq!(
        span.attribute("messaging.rabbitmq.destination.routing_key"),
        Some(event_type),
        "{}",
        span.describe()
    );
    assert!(
        span.attribute("messaging.message.id")
            .is_some_and(|id| !id.is_empty()),
        "{}",
        span.describe()
    );
}

/// The only publish of `event_type` below `ancestor`.
fn publish_below<'a>(
    spans: &'a SpanSet,
    ancestor: &'a CollectedSpan,
    bus: &Bus,
    event_type: &str,
) -> &'a CollectedSpan {
    let publish = one(
        spans,
        &format!("publish {event_type} below {}", ancestor.name),
        |span| {
            span.kind == SpanKind::Producer
                && span.attribute("messaging.rabbitmq.destination.routing_key") == Some(event_type)
                && is_below(spans, span, ancestor)
        },
    );
    assert_messaging(publish, bus, SpanKind::Producer, event_type);
    assert_eq!(publish.name, format!("publish {event_type}"));
    assert_eq!(publish.attribute("messaging.operation.type"), Some("send"));
    publish
}

/// The only consumer span of `queue` directly under `publish`, processing the same message.
fn consume<'a>(
    spans: &'a SpanSet,
    publish: &'a CollectedSpan,
    bus: &Bus,
    queue: &str,
) -> &'a CollectedSpan {
    let consumer = one(
        spans,
        &format!("{queue}'s delivery of {}", publish.name),
        |span| {
            span.is_child_of(publish)
                && span.kind == SpanKind::Consumer
                && span.attribute("messaging.consumer.group.name") == Some(queue)
        },
    );
    let event_type = publish
        .attribute("messaging.rabbitmq.destination.routing_key")
        .unwrap_or_default();
    assert_messaging(consumer, bus, SpanKind::Consumer, event_type);
    assert_eq!(consumer.name, format!("{queue} process"));
    assert_eq!(
        consumer.attribute("messaging.operation.type"),
        Some("process")
    );
    assert_eq!(
        consumer.attribute("messaging.message.id"),
        publish.attribute("messaging.message.id"),
        "the consumer processed the message the producer sent"
    );
    assert_eq!(consumer.attribute("mercato.outcome"), Some("Processed"));
    consumer
}
