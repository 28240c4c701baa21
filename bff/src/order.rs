//! Checkout and the caller's orders (`mercato.bff.v1.OrderService`), backed by the order
//! service's `OrderService`. The buyer is always the token's subject: no request names a user,
//! and the order service scopes every call to the forwarded principal.
//!
//! The forwarded principal never carries the admin role here. The order service lets an admin
//! cancel any order through its `CancelOrder`; the public API promises that someone else's
//! order is NOT_FOUND "for admins too", so an admin acts on other users' orders only through
//! `AdminService` (see [`crate::admin`]).
//!
//! `WatchOrder` forwards the order service's stream message by message. The request timeout of
//! the server stack bounds only the time to the response headers (authentication and the
//! upstream's first read), never a flowing stream; what bounds a stream instead is
//! [`WatchPolicy`]: its maximum duration and the BFF's shutdown, both ending it with
//! `UNAVAILABLE` so the browser watches again (the first message of a new watch carries the
//! latest state, so nothing is missed). A stream ends with OK only after a terminal state; the
//! order service ending it earlier (with OK, or `UNAVAILABLE` as it stops or its connection is
//! lost) ends it with the same retry-at-once `UNAVAILABLE`.
//!
//! `CreateOrder` without a shipping address ships to the caller's saved address: the BFF reads
//! it from the user service and forwards the request with it filled in, so the order service
//! stores (and fingerprints, for the idempotency key) the address the order really ships to. A
//! caller with no saved address gets the order service's own refusal, `FAILED_PRECONDITION` /
//! `SHIPPING_ADDRESS_REQUIRED`. Because the filled address is part of the request, replaying a
//! key after the saved address changed is a different request: the order service answers
//! `FAILED_PRECONDITION` / `IDEMPOTENCY_KEY_REUSED`, and the buyer checks out again under a new
//! key.
//!
//! `GetOrderPayment` finds the payment through the caller's order and reads it from the payment
//! service as the same caller (see [`crate::payment`]).

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use mercato_platform::error::{self as errors, ErrorCode};
use mercato_platform::grpc::ClientChannel;
use mercato_platform::principal::{self, Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::OrderStatus;
use mercato_proto::mercato::common::v1::PostalAddress;
use mercato_proto::mercato::order::v1 as order;
use mercato_proto::mercato::user::v1 as user;
use order::order_service_client::OrderServiceClient;
use tokio_util::sync::CancellationToken;
use tonic::codec::Streaming;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use user::user_service_client::UserServiceClient;

use crate::error::{broken_contract, downstream};
use crate::payment::OrderPayments;

/// What bounds a `WatchOrder` stream.
#[derive(Debug, Clone)]
pub struct WatchPolicy {
    /// Longest a stream stays open (`WATCH_MAX_DURATION`); it then ends with `UNAVAILABLE`.
    pub max_duration: Duration,
    /// Cancelled when the BFF starts shutting down: open streams end with `UNAVAILABLE` at once,
    /// so the drain is not held up by watchers and they reconnect to another replica.
    pub stopping: CancellationToken,
}

/// `mercato.bff.v1.OrderService`.
#[derive(Debug, Clone)]
pub struct OrderGrpc {
    orders: OrderServiceClient<ClientChannel>,
    users: UserServiceClient<ClientChannel>,
    payments: OrderPayments,
    watch: WatchPolicy,
}

impl OrderGrpc {
    /// The handler over the order-service channel, the user-service channel (for the saved
    /// shipping address) and the payment reads (for `GetOrderPayment`).
    pub fn new(
        order_channel: ClientChannel,
        user_channel: ClientChannel,
        payments: OrderPayments,
        watch: WatchPolicy,
    ) -> Self {
        Self {
            orders: OrderServiceClient::new(order_channel),
            users: UserServiceClient::new(user_channel),
            payments,
            watch,
        }
    }

    /// The buyer's saved shipping address, or `None` when they saved none (the order service
    /// then refuses the checkout with its precise reason). Any other failure — the account
    /// itself gone, the user service down — is the browser's answer.
    async fn saved_address(&self, buyer: &Principal) -> Result<Option<PostalAddress>, Status> {
        match self
            .users
            .clone()
            .get_shipping_address(as_buyer(buyer, user::GetShippingAddressRequest {}))
            .await
        {
            Ok(response) => Ok(response.into_inner().shipping_address),
            Err(status) if no_saved_address(&status) => Ok(None),
            Err(status) => Err(downstream(status)),
        }
    }
}

/// Whether the user service's refusal says the account has no shipping address (as opposed to
/// the account not existing).
fn no_saved_address(status: &Status) -> bool {
    status.code() == tonic::Code::NotFound
        && status
            .get_error_details()
            .resource_info()
            .is_some_and(|info| info.resource_type == "shipping_address")
}

/// Whose orders an [`Order`](bff::Order) is shown to, which decides whether the buyer's id is
/// in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// The buyer's own view (no user id).
    Buyer,
    /// The admin console (`buyer_user_id` set).
    Admin,
}

/// The caller as the order service sees them through this API: the token's user with every
/// role but admin, so the order service scopes each call to the caller's own orders.
pub(crate) fn buyer<T>(request: &Request<T>) -> Result<Principal, Status> {
    let caller = principal::require_user(request)?;
    Ok(Principal::new(
        caller.user_id,
        caller
            .roles
            .iter()
            .copied()
            .filter(|role| *role != Role::Admin),
    ))
}

/// `message` as a call made for `buyer` (an explicit principal wins over the task's current
/// one in the outbound channel).
pub(crate) fn as_buyer<T>(buyer: &Principal, message: T) -> Request<T> {
    let mut request = Request::new(message);
    buyer.write_metadata(request.metadata_mut());
    request
}

/// The public order, or INTERNAL when the order service answered without one.
pub(crate) fn order_of(
    found: Option<order::Order>,
    view: View,
    what: &str,
) -> Result<bff::Order, Status> {
    found
        .map(|found| public_order(found, view))
        .ok_or_else(|| broken_contract(what))
}

/// An internal order as the public API shows it. The seller of each line, the coupon
/// definition, the shipment id, payment times and versions stay internal.
pub(crate) fn public_order(found: order::Order, view: View) -> bff::Order {
    let order::Order {
        order_id,
        user_id,
        status,
        lines,
        subtotal,
        discount,
        shipping_fee,
        total,
        coupon,
        payment_method,
        payment,
        shipping_address,
        shipment,
        cancellation_reason,
        history,
        version: _,
        create_time,
        update_time,
        payment_due_time,
    } = found;
    let (payment_id, payment_url) = match payment {
        Some(order::OrderPayment {
            payment_id,
            payment_url,
            attach_time: _,
            paid_time: _,
        }) => (payment_id, payment_url),
        None => (String::new(), String::new()),
    };
    bff::Order {
        order_id,
        status,
        lines: lines.into_iter().map(public_line).collect(),
        subtotal,
        discount,
        shipping_fee,
        total,
        coupon: coupon.map(
            |order::AppliedCoupon {
                 user_coupon_id,
                 coupon_id: _,
                 name,
                 kind,
                 discount,
             }| bff::AppliedCoupon {
                user_coupon_id,
                name,
                kind,
                discount,
            },
        ),
        payment_method,
        payment_id,
        payment_url,
        shipping_address,
        shipment: shipment.map(
            |order::OrderShipment {
                 shipment_id: _,
                 carrier,
                 tracking_number,
                 tracking_url,
                 ship_time,
                 deliver_time,
             }| bff::OrderShipment {
                carrier,
                tracking_number,
                tracking_url,
                ship_time,
                deliver_time,
            },
        ),
        cancellation_reason,
        history: history
            .into_iter()
            .map(
                |order::OrderStatusChange {
                     from_status,
                     to_status,
                     change_time,
                     version: _,
                 }| bff::OrderStatusChange {
                    from_status,
                    to_status,
                    change_time,
                },
            )
            .collect(),
        create_time,
        update_time,
        payment_due_time,
        buyer_user_id: match view {
            View::Buyer => String::new(),
            View::Admin => user_id,
        },
    }
}

fn public_line(line: order::OrderLine) -> bff::OrderLine {
    let order::OrderLine {
        sku_id,
        product_id,
        seller_id: _,
        product_name,
        sku_code,
        option_values,
        main_image_url,
        quantity,
        unit_price,
        line_total,
    } = line;
    bff::OrderLine {
        sku_id,
        product_id,
        product_name,
        sku_code,
        option_values,
        main_image_url,
        quantity,
        unit_price,
        line_total,
    }
}

fn internal_source(
    source: bff::create_order_request::Source,
) -> order::create_order_request::Source {
    match source {
        bff::create_order_request::Source::ExplicitLines(bff::ExplicitLines { lines }) => {
            order::create_order_request::Source::ExplicitLines(order::ExplicitLines {
                lines: lines
                    .into_iter()
                    .map(
                        |bff::OrderLineInput { sku_id, quantity }| order::OrderLineInput {
                            sku_id,
                            quantity,
                        },
                    )
                    .collect(),
            })
        }
        bff::create_order_request::Source::Cart(bff::CartCheckout {}) => {
            order::create_order_request::Source::Cart(order::CartCheckout {})
        }
    }
}

/// Whether no further change can follow (the public contract's end of a watch).
fn is_terminal(status: i32) -> bool {
    match OrderStatus::try_from(status) {
        Ok(OrderStatus::Finished | OrderStatus::Cancelled | OrderStatus::Expired) => true,
        Ok(
            OrderStatus::Unspecified
            | OrderStatus::Pending
            | OrderStatus::AwaitingPayment
            | OrderStatus::Paid
            | OrderStatus::Shipped,
        )
        | Err(_) => false,
    }
}

/// `UNAVAILABLE` for a watch the BFF ends before a terminal state: retrying at once is right,
/// since a new watch starts with the latest state.
fn watch_ended(why: &str) -> Status {
    errors::status(
        ErrorCode::Unavailable,
        "UNAVAILABLE",
        format!("{why}; watch the order again"),
        ErrorDetails::with_retry_info(Some(Duration::ZERO)),
    )
}

/// The status a watch ends with when the order service's stream fails. `UNAVAILABLE` — the
/// order service stopping (it says so before a terminal state) or its connection lost — means
/// the same to the browser as the service ending the stream: watch again at once. Anything else
/// is masked as usual.
fn upstream_ended(status: Status) -> Status {
    if status.code() == tonic::Code::Unavailable {
        tracing::info!(error = status.message(), "the order service ended a watch");
        return watch_ended("the order service ended the watch");
    }
    downstream(status)
}

/// One forwarded watch: the upstream stream and what may end it early.
struct Watching {
    upstream: Streaming<order::WatchOrderResponse>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    stopping: CancellationToken,
    /// Whether the last forwarded order was in a terminal state.
    terminal: bool,
}

/// The next public message of a watch, or the status that ends it.
async fn next_message(watching: &mut Watching) -> Result<Option<bff::WatchOrderResponse>, Status> {
    tokio::select! {
        // Shutdown and the duration bound win over a message that is ready at the same time,
        // so a busy stream still ends when it must.
        biased;
        () = watching.stopping.cancelled() => Err(watch_ended("the server is shutting down")),
        () = &mut watching.deadline => Err(watch_ended("the watch reached its maximum duration")),
        message = watching.upstream.message() => match message.map_err(upstream_ended)? {
            Some(order::WatchOrderResponse { order }) => {
                let order = order_of(order, View::Buyer, "WatchOrderResponse.order")?;
                watching.terminal = is_terminal(order.status);
                Ok(Some(bff::WatchOrderResponse { order: Some(order) }))
            }
            // The order service ends a stream with OK at a terminal state, but also when it
            // shuts down; only the first is the end the public contract promises.
            None if watching.terminal => Ok(None),
            None => Err(watch_ended("the order service ended the watch")),
        },
    }
}

/// The public stream over `watching`. Dropping it (the browser went away) drops the upstream
/// stream, which cancels the order service's side of the watch.
fn forward(
    watching: Watching,
) -> <OrderGrpc as bff::order_service_server::OrderService>::WatchOrderStream {
    Box::pin(futures::stream::unfold(
        Some(watching),
        |state| async move {
            let mut watching = state?;
            match next_message(&mut watching).await {
                Ok(Some(message)) => Some((Ok(message), Some(watching))),
                Ok(None) => None,
                Err(status) => Some((Err(status), None)),
            }
        },
    ))
}

#[tonic::async_trait]
impl bff::order_service_server::OrderService for OrderGrpc {
    type WatchOrderStream =
        Pin<Box<dyn Stream<Item = Result<bff::WatchOrderResponse, Status>> + Send + 'static>>;

    async fn create_order(
        &self,
        request: Request<bff::CreateOrderRequest>,
    ) -> Result<Response<bff::CreateOrderResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::CreateOrderRequest {
            idempotency_key,
            source,
            shipping_address,
            payment_method,
            user_coupon_id,
            expected_total,
        } = request.into_inner();
        let shipping_address = match shipping_address {
            Some(given) => Some(given),
            None => self.saved_address(&buyer).await?,
        };
        let response = self
            .orders
            .clone()
            .create_order(as_buyer(
                &buyer,
                order::CreateOrderRequest {
                    idempotency_key,
                    source: source.map(internal_source),
                    shipping_address,
                    payment_method,
                    user_coupon_id,
                    expected_total,
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        let order::CreateOrderResponse { order, replayed } = response;
        Ok(Response::new(bff::CreateOrderResponse {
            order: Some(order_of(order, View::Buyer, "CreateOrderResponse.order")?),
            replayed,
        }))
    }

    async fn get_order(
        &self,
        request: Request<bff::GetOrderRequest>,
    ) -> Result<Response<bff::GetOrderResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::GetOrderRequest { order_id } = request.into_inner();
        let order::GetOrderResponse { order } = self
            .orders
            .clone()
            .get_order(as_buyer(&buyer, order::GetOrderRequest { order_id }))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GetOrderResponse {
            order: Some(order_of(order, View::Buyer, "GetOrderResponse.order")?),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<bff::ListOrdersRequest>,
    ) -> Result<Response<bff::ListOrdersResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::ListOrdersRequest {
            page_size,
            page_token,
            statuses,
            create_time_from,
            create_time_to,
        } = request.into_inner();
        let order::ListOrdersResponse {
            orders,
            next_page_token,
        } = self
            .orders
            .clone()
            .list_orders(as_buyer(
                &buyer,
                order::ListOrdersRequest {
                    page_size,
                    page_token,
                    statuses,
                    create_time_from,
                    create_time_to,
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListOrdersResponse {
            orders: orders
                .into_iter()
                .map(|found| public_order(found, View::Buyer))
                .collect(),
            next_page_token,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<bff::CancelOrderRequest>,
    ) -> Result<Response<bff::CancelOrderResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::CancelOrderRequest { order_id } = request.into_inner();
        let order::CancelOrderResponse { order } = self
            .orders
            .clone()
            .cancel_order(as_buyer(&buyer, order::CancelOrderRequest { order_id }))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::CancelOrderResponse {
            order: Some(order_of(order, View::Buyer, "CancelOrderResponse.order")?),
        }))
    }

    async fn watch_order(
        &self,
        request: Request<bff::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        let buyer = buyer(&request)?;
        let bff::WatchOrderRequest { order_id } = request.into_inner();
        let mut upstream = as_buyer(&buyer, order::WatchOrderRequest { order_id });
        // The deadline the order service is told is how long this side will listen, not the
        // channel's unary default, which a deadline-enforcing hop would cut the stream at.
        upstream.set_timeout(self.watch.max_duration);
        let deadline = tokio::time::Instant::now() + self.watch.max_duration;
        let upstream = self
            .orders
            .clone()
            .watch_order(upstream)
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(forward(Watching {
            upstream,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            stopping: self.watch.stopping.clone(),
            terminal: false,
        })))
    }

    async fn get_order_payment(
        &self,
        request: Request<bff::GetOrderPaymentRequest>,
    ) -> Result<Response<bff::GetOrderPaymentResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::GetOrderPaymentRequest { order_id } = request.into_inner();
        let payment = self
            .payments
            .of_order(&self.orders, &buyer, order_id)
            .await?;
        Ok(Response::new(bff::GetOrderPaymentResponse {
            payment: Some(payment),
        }))
    }
}
