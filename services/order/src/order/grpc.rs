//! The gRPC surface of `OrderService`: who may call what, request parsing, and the responses.
//! Buyers see only their own orders (another's looks NOT_FOUND); admins read any order through
//! LookupOrder and SearchOrders; the internal RPCs that advance the saga accept only internal
//! services (never the BFF, which relays browsers).

use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use mercato_platform::error::{self, ErrorCode};
use mercato_platform::principal::{self, Role};
use mercato_proto::mercato::common::v1::{OrderCancellationReason, OrderStatus};
use mercato_proto::mercato::order::v1 as pb;
use pb::order_service_server::OrderService;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cart::error::Violation;
use crate::context::OrderContext;
use crate::order::create;
use crate::order::error::OrderError;
use crate::order::model::StoredOrder;
use crate::order::state::{Command, Status as OrderState};
use crate::order::store::{self, Facts, ListFilter, PageToken};
use crate::order::transition::{self, Request as Transition};
use crate::order::watch::Change;

type GrpcResult<T> = Result<Response<T>, Status>;

/// How often an idle watch stream repeats the unchanged order.
pub const WATCH_HEARTBEAT: Duration = Duration::from_secs(30);

/// Implements `OrderService` over the shared context.
#[derive(Debug, Clone)]
pub struct OrderGrpc {
    context: OrderContext,
}

impl OrderGrpc {
    /// The service over `context`.
    pub fn new(context: OrderContext) -> Self {
        Self { context }
    }

    async fn load(&self, order_id: Uuid, owner: Option<Uuid>) -> Result<StoredOrder, OrderError> {
        let mut conn = self.context.pool.acquire().await?;
        store::load(&mut conn, order_id)
            .await?
            .filter(|o| owner.is_none_or(|owner| owner == o.order.user_id))
            .ok_or_else(|| OrderError::order_not_found(order_id))
    }

    async fn transition(
        &self,
        order_id: Uuid,
        request: Transition,
    ) -> Result<pb::Order, OrderError> {
        let mut tx = self.context.pool.begin().await?;
        let outcome =
            transition::apply(&mut tx, order_id, request, self.context.clock.now()).await?;
        tx.commit().await?;
        outcome.order.to_proto()
    }

    async fn list(
        &self,
        filter: ListFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<pb::Order>, String), OrderError> {
        let limit = page_limit(page_size)?;
        let hash = filter.hash();
        let after = if page_token.is_empty() {
            None
        } else {
            Some(PageToken::decode(page_token, &hash)?)
        };
        let mut conn = self.context.pool.acquire().await?;
        let (orders, more) = store::list(&mut conn, &filter, after.as_ref(), limit).await?;
        let next = match orders.last() {
            Some(last) if more => PageToken {
                create_micros: last.order.create_time.timestamp_micros(),
                order_id: last.order.order_id,
                filter: hash,
            }
            .encode(),
            _ => String::new(),
        };
        let orders = orders
            .iter()
            .map(StoredOrder::to_proto)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((orders, next))
    }
}

fn page_limit(page_size: i32) -> Result<usize, OrderError> {
    match page_size {
        n if n < 0 => Err(OrderError::field("page_size", "must not be negative")),
        0 => Ok(20),
        n => Ok(usize::try_from(n.min(100)).unwrap_or(100)),
    }
}

fn order_id(raw: &str) -> Result<Uuid, OrderError> {
    if raw.is_empty() {
        return Err(OrderError::field("order_id", "is required"));
    }
    Uuid::parse_str(raw).map_err(|_| OrderError::field("order_id", "must be a uuid"))
}

fn time(
    raw: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, OrderError> {
    raw.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
            .ok_or_else(|| OrderError::field(field, "is not a valid timestamp"))
    })
    .transpose()
}

fn statuses(raw: &[i32]) -> Result<Vec<OrderState>, OrderError> {
    raw.iter()
        .map(|value| {
            OrderStatus::try_from(*value)
                .ok()
                .and_then(OrderState::from_proto)
                .ok_or_else(|| {
                    OrderError::field("statuses", format!("{value} is not an order status"))
                })
        })
        .collect()
}

fn text(raw: &str, field: &str, max: usize, violations: &mut Vec<Violation>) -> Option<String> {
    let value = raw.trim();
    if value.is_empty() {
        violations.push(Violation::new(field, "is required"));
        None
    } else if value.chars().count() > max {
        violations.push(Violation::new(
            field,
            format!("must be at most {max} characters"),
        ));
        None
    } else {
        Some(value.to_owned())
    }
}

/// Only internal services (the payment and process services) may advance the saga.
fn require_internal<T>(request: &Request<T>) -> Result<(), OrderError> {
    if principal::is_internal_service(request) {
        Ok(())
    } else {
        Err(OrderError::RoleRequired("internal service"))
    }
}

fn require_admin_or_internal<T>(request: &Request<T>) -> Result<(), Status> {
    if principal::is_internal_service(request) {
        return Ok(());
    }
    principal::require_role(request, Role::Admin).map(|_| ())
}

#[tonic::async_trait]
impl OrderService for OrderGrpc {
    type WatchOrderStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchOrderResponse, Status>> + Send + 'static>>;

    #[tracing::instrument(name = "order.create_order", skip_all, fields(order.id))]
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> GrpcResult<pb::CreateOrderResponse> {
        let user_id = principal::require_user(&request)?.user_id;
        let input = create::parse(request.get_ref(), &self.context.settings.cart.currency)?;
        let (order, replayed) = create::create(&self.context, user_id, input).await?;
        tracing::Span::current().record("order.id", order.order.order_id.to_string());
        Ok(Response::new(pb::CreateOrderResponse {
            order: Some(order.to_proto()?),
            replayed,
        }))
    }

    #[tracing::instrument(name = "order.get_order", skip_all)]
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> GrpcResult<pb::GetOrderResponse> {
        let user_id = principal::require_user(&request)?.user_id;
        let id = order_id(&request.get_ref().order_id)?;
        let order = self.load(id, Some(user_id)).await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(order.to_proto()?),
        }))
    }

    #[tracing::instrument(name = "order.list_orders", skip_all)]
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> GrpcResult<pb::ListOrdersResponse> {
        let user_id = principal::require_user(&request)?.user_id;
        let r = request.get_ref();
        let filter = ListFilter {
            user_id: Some(user_id),
            statuses: statuses(&r.statuses)?,
            from: time(r.create_time_from.as_ref(), "create_time_from")?,
            to: time(r.create_time_to.as_ref(), "create_time_to")?,
        };
        let (orders, next_page_token) = self.list(filter, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "order.cancel_order", skip_all, fields(order.id))]
    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> GrpcResult<pb::CancelOrderResponse> {
        let id = order_id(&request.get_ref().order_id)?;
        tracing::Span::current().record("order.id", id.to_string());
        let privileged = principal::is_internal_service(&request)
            || principal::require_role(&request, Role::Admin).is_ok();
        let (owner, reason) = if privileged {
            (None, OrderCancellationReason::AdminRequested)
        } else {
            let user_id = principal::require_user(&request)?.user_id;
            (Some(user_id), OrderCancellationReason::UserRequested)
        };
        let facts = Facts {
            cancellation_reason: Some(reason as i16),
            ..Facts::default()
        };
        let order = self
            .transition(
                id,
                Transition::new(Command::Cancel)
                    .with_facts(facts)
                    .owned_by(owner),
            )
            .await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(order),
        }))
    }

    #[tracing::instrument(name = "order.watch_order", skip_all, fields(order.id))]
    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> GrpcResult<Self::WatchOrderStream> {
        let user_id = principal::require_user(&request)?.user_id;
        let id = order_id(&request.get_ref().order_id)?;
        // Subscribe before the first read, so a change committed in between is heard.
        let changes = self.context.watch.subscribe();
        let first = self.load(id, Some(user_id)).await?;
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(stream_order(self.clone(), first, changes, sender));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    #[tracing::instrument(name = "order.lookup_order", skip_all)]
    async fn lookup_order(
        &self,
        request: Request<pb::LookupOrderRequest>,
    ) -> GrpcResult<pb::LookupOrderResponse> {
        require_admin_or_internal(&request)?;
        let id = order_id(&request.get_ref().order_id)?;
        let order = self.load(id, None).await?;
        Ok(Response::new(pb::LookupOrderResponse {
            order: Some(order.to_proto()?),
        }))
    }

    #[tracing::instrument(name = "order.search_orders", skip_all)]
    async fn search_orders(
        &self,
        request: Request<pb::SearchOrdersRequest>,
    ) -> GrpcResult<pb::SearchOrdersResponse> {
        principal::require_role(&request, Role::Admin)?;
        let r = request.get_ref();
        let user_id = if r.user_id.is_empty() {
            None
        } else {
            Some(
                Uuid::parse_str(&r.user_id)
                    .map_err(|_| OrderError::field("user_id", "must be a uuid"))?,
            )
        };
        let filter = ListFilter {
            user_id,
            statuses: statuses(&r.statuses)?,
            from: time(r.create_time_from.as_ref(), "create_time_from")?,
            to: time(r.create_time_to.as_ref(), "create_time_to")?,
        };
        let (orders, next_page_token) = self.list(filter, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::SearchOrdersResponse {
            orders,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "order.attach_payment", skip_all, fields(order.id))]
    async fn attach_payment(
        &self,
        request: Request<pb::AttachPaymentRequest>,
    ) -> GrpcResult<pb::AttachPaymentResponse> {
        require_internal(&request)?;
        let r = request.get_ref();
        let id = order_id(&r.order_id)?;
        let mut violations = Vec::new();
        let payment_id = text(&r.payment_id, "payment_id", 100, &mut violations);
        if r.payment_url.len() > 2_048 {
            violations.push(Violation::new("payment_url", "must be at most 2048 bytes"));
        }
        if !violations.is_empty() {
            return Err(OrderError::Validation(violations).into());
        }
        let facts = Facts {
            payment_id,
            payment_url: (!r.payment_url.is_empty()).then(|| r.payment_url.clone()),
            attach_time: Some(self.context.clock.now()),
            ..Facts::default()
        };
        let order = self
            .transition(
                id,
                Transition::new(Command::AttachPayment).with_facts(facts),
            )
            .await?;
        Ok(Response::new(pb::AttachPaymentResponse {
            order: Some(order),
        }))
    }

    #[tracing::instrument(name = "order.mark_order_shipped", skip_all, fields(order.id))]
    async fn mark_order_shipped(
        &self,
        request: Request<pb::MarkOrderShippedRequest>,
    ) -> GrpcResult<pb::MarkOrderShippedResponse> {
        require_internal(&request)?;
        let r = request.get_ref();
        let id = order_id(&r.order_id)?;
        let mut violations = Vec::new();
        let shipment_id = text(&r.shipment_id, "shipment_id", 100, &mut violations);
        let carrier = text(&r.carrier, "carrier", 50, &mut violations);
        let tracking_number = text(&r.tracking_number, "tracking_number", 64, &mut violations);
        if r.tracking_url.len() > 2_048 {
            violations.push(Violation::new("tracking_url", "must be at most 2048 bytes"));
        }
        if !violations.is_empty() {
            return Err(OrderError::Validation(violations).into());
        }
        let ship_time = time(r.ship_time.as_ref(), "ship_time")?;
        let facts = Facts {
            shipment_id,
            carrier,
            tracking_number,
            tracking_url: (!r.tracking_url.is_empty()).then(|| r.tracking_url.clone()),
            ship_time: Some(ship_time.unwrap_or_else(|| self.context.clock.now())),
            ..Facts::default()
        };
        let order = self
            .transition(id, Transition::new(Command::Ship).with_facts(facts))
            .await?;
        Ok(Response::new(pb::MarkOrderShippedResponse {
            order: Some(order),
        }))
    }

    #[tracing::instrument(name = "order.mark_order_finished", skip_all, fields(order.id))]
    async fn mark_order_finished(
        &self,
        request: Request<pb::MarkOrderFinishedRequest>,
    ) -> GrpcResult<pb::MarkOrderFinishedResponse> {
        require_internal(&request)?;
        let r = request.get_ref();
        let id = order_id(&r.order_id)?;
        let deliver_time = time(r.deliver_time.as_ref(), "deliver_time")?;
        let facts = Facts {
            deliver_time: Some(deliver_time.unwrap_or_else(|| self.context.clock.now())),
            ..Facts::default()
        };
        let order = self
            .transition(id, Transition::new(Command::Finish).with_facts(facts))
            .await?;
        Ok(Response::new(pb::MarkOrderFinishedResponse {
            order: Some(order),
        }))
    }
}

/// Ends a watch of a non-terminal order because this server stops: UNAVAILABLE tells the client
/// to watch again (elsewhere), where a bare end of stream would read as OK, "the order is done".
async fn ended_early(sender: &mpsc::Sender<Result<pb::WatchOrderResponse, Status>>) {
    // The same masked UNAVAILABLE (ErrorInfo with a correlation id) as any other; not logged as
    // a failure, since a stopping server ends its watches by design.
    let status = error::masked(ErrorCode::Unavailable, &error::correlation_id());
    let _ = sender.send(Err(status)).await;
}

/// Feeds one watch stream: the current order, then the order after every change, a heartbeat
/// when idle, until a terminal state (OK), the client leaving, or the service stopping
/// (UNAVAILABLE).
async fn stream_order(
    service: OrderGrpc,
    first: StoredOrder,
    mut changes: broadcast::Receiver<Change>,
    sender: mpsc::Sender<Result<pb::WatchOrderResponse, Status>>,
) {
    let order_id = first.order.order_id;
    let owner = first.order.user_id;
    let stopped = service.context.watch.stopped();
    let mut current = first;
    loop {
        let message = current
            .to_proto()
            .map(|order| pb::WatchOrderResponse { order: Some(order) })
            .map_err(Status::from);
        let failed = message.is_err();
        if sender.send(message).await.is_err() || failed {
            return;
        }
        if current.order.status().is_ok_and(OrderState::is_terminal) {
            return;
        }
        let heartbeat = tokio::time::sleep(WATCH_HEARTBEAT);
        tokio::pin!(heartbeat);
        let version = current.order.version;
        loop {
            let reread = tokio::select! {
                () = sender.closed() => return,
                () = stopped.cancelled() => return ended_early(&sender).await,
                () = &mut heartbeat => {
                    // Repeat the order as it is now (a heartbeat that is also a re-read).
                    if let Ok(order) = service.load(order_id, Some(owner)).await {
                        current = order;
                    }
                    break;
                }
                change = changes.recv() => match change {
                    Ok(Change::Order(id)) => id == order_id,
                    Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => return ended_early(&sender).await,
                },
            };
            if !reread {
                continue;
            }
            match service.load(order_id, Some(owner)).await {
                Ok(order) if order.order.version != version => {
                    current = order;
                    break;
                }
                Ok(_) => {}
                Err(err) => {
                    let _ = sender.send(Err(Status::from(err))).await;
                    return;
                }
            }
        }
    }
}
