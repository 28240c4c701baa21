//! The shop every saga test opens: clients on the BFF, a shopper and an operator, a SKU, and
//! the steps and checks the tests share.

use std::time::Duration;

use crate::support::{
    SKU_PRICE, Services, reason, seed_sku, shipping_address, sign_up, sign_up_admin, with_token,
};
use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as product;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use uuid::Uuid;

/// How long a saga step may take before a test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// The discount of the coupon each checkout uses, in JPY.
pub(crate) const DISCOUNT: i64 = 300;

/// Units every checkout buys, of a SKU stocked with [`ON_HAND`].
pub(crate) const UNITS: i64 = 2;
pub(crate) const ON_HAND: i64 = 10;

/// Points a POINTS buyer charges before checking out.
pub(crate) const CHARGE: i64 = 10_000;

pub(crate) fn jpy(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

pub(crate) fn total() -> i64 {
    UNITS * SKU_PRICE - DISCOUNT
}

pub(crate) fn status_of(order: &bff::Order) -> common::OrderStatus {
    common::OrderStatus::try_from(order.status).expect("a known order status")
}

pub(crate) fn shipment_status(shipment: &bff::Shipment) -> common::ShipmentStatus {
    common::ShipmentStatus::try_from(shipment.status).expect("a known shipment status")
}

/// A request as an internal admin (the tests' view of the services behind the BFF).
pub(crate) fn as_operator<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    Principal::new(Uuid::new_v4(), [Role::Admin]).write_metadata(request.metadata_mut());
    request
}

/// The BFF's clients on one channel, the tokens of one shopper and one operator, and the SKU
/// they buy.
pub(crate) struct Shop {
    pub(crate) orders: bff::order_service_client::OrderServiceClient<Channel>,
    pub(crate) wallets: bff::wallet_service_client::WalletServiceClient<Channel>,
    pub(crate) admin: bff::admin_service_client::AdminServiceClient<Channel>,
    pub(crate) coupons: bff::coupon_service_client::CouponServiceClient<Channel>,
    pub(crate) carts: bff::cart_service_client::CartServiceClient<Channel>,
    pub(crate) stock: product::stock_service_client::StockServiceClient<Channel>,
    pub(crate) shopper: String,
    pub(crate) operator: String,
    pub(crate) sku: String,
}

impl Shop {
    /// A shopper and an operator signed up through `bff`, and a SKU with [`ON_HAND`] units.
    pub(crate) async fn open(services: &Services, bff: &crate::support::TestBff) -> Self {
        let channel = bff.channel().await;
        let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
        let operator = sign_up_admin(&mut auth, &services.users.grpc_uri()).await;
        let shopper = sign_up(&mut auth).await;
        let sku = seed_sku(&services.products.grpc_uri(), ON_HAND).await;
        let product_channel = Channel::from_shared(services.products.grpc_uri())
            .expect("product uri")
            .connect_lazy();
        Self {
            orders: bff::order_service_client::OrderServiceClient::new(channel.clone()),
            wallets: bff::wallet_service_client::WalletServiceClient::new(channel.clone()),
            admin: bff::admin_service_client::AdminServiceClient::new(channel.clone()),
            coupons: bff::coupon_service_client::CouponServiceClient::new(channel.clone()),
            carts: bff::cart_service_client::CartServiceClient::new(channel),
            stock: product::stock_service_client::StockServiceClient::new(product_channel),
            shopper,
            operator,
            sku,
        }
    }

    pub(crate) async fn charge(&mut self, amount: i64) {
        self.wallets
            .charge_points(with_token(
                bff::ChargePointsRequest {
                    amount: jpy(amount),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &self.shopper,
            ))
            .await
            .expect("points charged");
    }

    pub(crate) async fn balance(&mut self) -> i64 {
        self.wallets
            .get_wallet(with_token(bff::GetWalletRequest {}, &self.shopper))
            .await
            .expect("wallet read")
            .into_inner()
            .wallet
            .and_then(|wallet| wallet.balance)
            .expect("balance")
            .amount_minor
    }

    /// The shopper's ledger entries of `kind` for `order_id`.
    pub(crate) async fn entries(
        &mut self,
        kind: common::LedgerEntryKind,
        order_id: &str,
    ) -> Vec<i64> {
        self.wallets
            .list_ledger_entries(with_token(
                bff::ListLedgerEntriesRequest {
                    page_size: 100,
                    kinds: vec![kind.into()],
                    ..bff::ListLedgerEntriesRequest::default()
                },
                &self.shopper,
            ))
            .await
            .expect("ledger listed")
            .into_inner()
            .entries
            .into_iter()
            .filter(|entry| entry.order_id == order_id)
            .map(|entry| entry.amount.expect("amount").amount_minor)
            .collect()
    }

    /// A coupon of [`DISCOUNT`] off, claimed by the shopper from a campaign the operator opens.
    pub(crate) async fn claimed_coupon(&mut self) -> bff::UserCoupon {
        let coupon = self
            .admin
            .create_coupon(with_token(
                bff::CreateCouponRequest {
                    coupon: Some(bff::Coupon {
                        name: "300 yen off".to_owned(),
                        kind: common::CouponKind::Fixed.into(),
                        fixed_discount: jpy(DISCOUNT),
                        validity_days: 30,
                        ..bff::Coupon::default()
                    }),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &self.operator,
            ))
            .await
            .expect("coupon created")
            .into_inner()
            .coupon
            .expect("coupon");
        let now = std::time::SystemTime::now();
        let campaign = self
            .admin
            .create_campaign(with_token(
                bff::CreateCampaignRequest {
                    campaign: Some(bff::CouponCampaign {
                        coupon_id: coupon.coupon_id,
                        name: "Launch".to_owned(),
                        start_time: Some((now - Duration::from_secs(60)).into()),
                        end_time: Some((now + Duration::from_secs(3_600)).into()),
                        total_quantity: 10,
                        ..bff::CouponCampaign::default()
                    }),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &self.operator,
            ))
            .await
            .expect("campaign created")
            .into_inner()
            .campaign
            .expect("campaign");
        self.coupons
            .claim_coupon(with_token(
                bff::ClaimCouponRequest {
                    campaign_id: campaign.campaign_id,
                },
                &self.shopper,
            ))
            .await
            .expect("coupon claimed")
            .into_inner()
            .user_coupon
            .expect("user coupon")
    }

    pub(crate) async fn coupon_status(
        &mut self,
        user_coupon_id: &str,
    ) -> (common::UserCouponStatus, String) {
        let held = self
            .coupons
            .list_my_coupons(with_token(
                bff::ListMyCouponsRequest::default(),
                &self.shopper,
            ))
            .await
            .expect("coupons listed")
            .into_inner()
            .user_coupons
            .into_iter()
            .find(|held| held.user_coupon_id == user_coupon_id)
            .expect("the coupon is held");
        (
            common::UserCouponStatus::try_from(held.status).expect("a known coupon status"),
            held.order_id,
        )
    }

    /// Puts [`UNITS`] of the SKU in the cart and checks the cart out with `method` and `coupon`.
    pub(crate) async fn checkout(
        &mut self,
        method: common::PaymentMethod,
        coupon: &bff::UserCoupon,
    ) -> bff::Order {
        self.carts
            .add_cart_item(with_token(
                bff::AddCartItemRequest {
                    sku_id: self.sku.clone(),
                    quantity: UNITS,
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &self.shopper,
            ))
            .await
            .expect("added to the cart");
        let placed = self
            .orders
            .create_order(with_token(
                bff::CreateOrderRequest {
                    idempotency_key: Uuid::new_v4().to_string(),
                    source: Some(bff::create_order_request::Source::Cart(
                        bff::CartCheckout {},
                    )),
                    shipping_address: Some(shipping_address("Shopper")),
                    payment_method: method.into(),
                    user_coupon_id: coupon.user_coupon_id.clone(),
                    expected_total: jpy(total()),
                },
                &self.shopper,
            ))
            .await
            .expect("checkout")
            .into_inner()
            .order
            .expect("order");
        assert_eq!(placed.total, jpy(total()));
        placed
    }

    pub(crate) async fn order(&mut self, order_id: &str) -> bff::Order {
        self.orders
            .get_order(with_token(
                bff::GetOrderRequest {
                    order_id: order_id.to_owned(),
                },
                &self.shopper,
            ))
            .await
            .expect("order read")
            .into_inner()
            .order
            .expect("order")
    }

    pub(crate) async fn payment(&mut self, order_id: &str) -> Result<bff::Payment, Status> {
        self.orders
            .get_order_payment(with_token(
                bff::GetOrderPaymentRequest {
                    order_id: order_id.to_owned(),
                },
                &self.shopper,
            ))
            .await
            .map(|response| response.into_inner().payment.expect("payment"))
    }

    /// The order's payment once the payment service attached it (`PAYMENT_NOT_READY` before).
    pub(crate) async fn attached_payment(&mut self, order_id: &str) -> bff::Payment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.payment(order_id).await {
                Ok(payment) => return payment,
                Err(status) if reason(&status) == "PAYMENT_NOT_READY" => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "order {order_id} never got a payment"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("reading the payment failed: {status:?}"),
            }
        }
    }

    /// Waits until the payment is `want`; the payment then.
    pub(crate) async fn payment_until(
        &mut self,
        order_id: &str,
        want: common::PaymentStatus,
    ) -> bff::Payment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let payment = self.payment(order_id).await.expect("the payment");
            if payment.status == i32::from(want) {
                return payment;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the payment of {order_id} stayed {:?}, never {want:?}",
                payment.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Watches the order through the BFF until it is `want`; the order then, and every status
    /// the watches delivered (in order). A watch the BFF ends early (UNAVAILABLE) is started
    /// again, as the storefront does.
    pub(crate) async fn watch_until(
        &mut self,
        order_id: &str,
        want: common::OrderStatus,
    ) -> (bff::Order, Vec<common::OrderStatus>) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let mut stream = self.watch(order_id).await;
            loop {
                match next_message(&mut stream, deadline, &seen, want).await {
                    Ok(Some(order)) => {
                        let status = status_of(&order);
                        if seen.last() != Some(&status) {
                            seen.push(status);
                        }
                        if status == want {
                            return (order, seen);
                        }
                    }
                    Ok(None) => panic!("order {order_id} ended after {seen:?}, never {want:?}"),
                    Err(status) if status.code() == Code::Unavailable => break,
                    Err(status) => panic!("the watch failed: {status:?}"),
                }
            }
        }
    }

    pub(crate) async fn watch(
        &mut self,
        order_id: &str,
    ) -> tonic::Streaming<bff::WatchOrderResponse> {
        self.orders
            .watch_order(with_token(
                bff::WatchOrderRequest {
                    order_id: order_id.to_owned(),
                },
                &self.shopper,
            ))
            .await
            .expect("watch starts")
            .into_inner()
    }

    /// The shipments of `order_id` the admin console lists.
    pub(crate) async fn shipments(&mut self, order_id: &str) -> Vec<bff::Shipment> {
        self.admin
            .list_shipments(with_token(
                bff::ListShipmentsRequest {
                    order_id: order_id.to_owned(),
                    ..bff::ListShipmentsRequest::default()
                },
                &self.operator,
            ))
            .await
            .expect("shipments listed")
            .into_inner()
            .shipments
    }

    /// Waits until the order's one shipment is `want`; the shipment then.
    pub(crate) async fn shipment_until(
        &mut self,
        order_id: &str,
        want: common::ShipmentStatus,
    ) -> bff::Shipment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let shipments = self.shipments(order_id).await;
            assert!(
                shipments.len() <= 1,
                "one shipment per order: {shipments:?}"
            );
            if let Some(shipment) = shipments.first()
                && shipment_status(shipment) == want
            {
                return shipment.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the shipment of {order_id} is {shipments:?}, never {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `(on_hand, reserved)` of the SKU.
    pub(crate) async fn stock_level(&mut self) -> (i64, i64) {
        let level = self
            .stock
            .get_stock(as_operator(product::GetStockRequest {
                sku_id: self.sku.clone(),
            }))
            .await
            .expect("stock read")
            .into_inner()
            .stock
            .expect("stock level");
        (level.on_hand, level.reserved)
    }

    /// Waits until the SKU's stock is `want`.
    pub(crate) async fn stock_until(&mut self, want: (i64, i64)) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.stock_level().await;
            if now == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stock stayed {now:?}, expected {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn reservation(&mut self, order_id: &str) -> product::ReservationStatus {
        let reservation = self
            .stock
            .get_reservation(as_operator(product::GetReservationRequest {
                order_id: order_id.to_owned(),
            }))
            .await
            .expect("reservation read")
            .into_inner()
            .reservation
            .expect("reservation");
        product::ReservationStatus::try_from(reservation.status).expect("a known status")
    }
}

/// The next order of a watch, `None` at its end, or its error; fails the test at `deadline`.
pub(crate) async fn next_message(
    stream: &mut tonic::Streaming<bff::WatchOrderResponse>,
    deadline: tokio::time::Instant,
    seen: &[common::OrderStatus],
    want: common::OrderStatus,
) -> Result<Option<bff::Order>, Status> {
    let message = tokio::time::timeout_at(deadline, stream.message())
        .await
        .unwrap_or_else(|_| panic!("the order went through {seen:?}, never {want:?}"))?;
    Ok(message.map(|message| message.order.expect("a watch message carries its order")))
}

/// Reads one watch until the order is `want` (recording each new status in `seen`); the order
/// then. The watch must stay open until then.
pub(crate) async fn watch_to(
    stream: &mut tonic::Streaming<bff::WatchOrderResponse>,
    deadline: tokio::time::Instant,
    seen: &mut Vec<common::OrderStatus>,
    want: common::OrderStatus,
) -> bff::Order {
    loop {
        let order = next_message(stream, deadline, seen, want)
            .await
            .expect("the watch stays open")
            .unwrap_or_else(|| panic!("the watch ended after {seen:?}, before {want:?}"));
        let status = status_of(&order);
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        if status == want {
            return order;
        }
    }
}

/// What every fulfilled order must show: FINISHED with the shipment's tracking number (the one
/// the admin console lists, DELIVERED), a history through PAID, SHIPPED and FINISHED, the stock
/// committed and the coupon used by it.
pub(crate) async fn assert_fulfilled(
    shop: &mut Shop,
    finished: &bff::Order,
    watched: &[common::OrderStatus],
    coupon: &bff::UserCoupon,
) {
    let order_id = finished.order_id.as_str();
    assert_eq!(status_of(finished), common::OrderStatus::Finished);
    assert_eq!(
        watched.last(),
        Some(&common::OrderStatus::Finished),
        "{watched:?}"
    );
    let parcel = finished
        .shipment
        .as_ref()
        .expect("a finished order shows its parcel");
    assert!(
        !parcel.tracking_number.is_empty(),
        "the buyer sees a tracking number: {parcel:?}"
    );
    assert!(!parcel.carrier.is_empty(), "{parcel:?}");
    assert!(parcel.ship_time.is_some() && parcel.deliver_time.is_some());
    let history: Vec<i32> = finished
        .history
        .iter()
        .map(|change| change.to_status)
        .collect();
    let tail: Vec<i32> = [
        common::OrderStatus::Paid,
        common::OrderStatus::Shipped,
        common::OrderStatus::Finished,
    ]
    .map(i32::from)
    .to_vec();
    assert!(
        history.ends_with(&tail),
        "the history ends PAID, SHIPPED, FINISHED: {history:?}"
    );
    // The buyer's other views say the same.
    let read = shop.order(order_id).await;
    assert_eq!(read.shipment.as_ref(), Some(parcel));
    let listed = shop
        .orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &shop.shopper))
        .await
        .expect("orders listed")
        .into_inner()
        .orders;
    let listed = listed
        .iter()
        .find(|found| found.order_id == order_id)
        .expect("the order is listed");
    assert_eq!(listed.shipment.as_ref(), Some(parcel));

    // The admin console lists the one shipment, delivered, with the same tracking number (the
    // process service records the delivery once the order is FINISHED, so it may lag a moment).
    let shipment = &shop
        .shipment_until(order_id, common::ShipmentStatus::Delivered)
        .await;
    assert_eq!(shipment.order_id, order_id);
    assert_eq!(shipment.tracking_number, parcel.tracking_number);
    assert_eq!(shipment.carrier, parcel.carrier);
    assert_eq!(shipment.ship_time, parcel.ship_time);
    assert_eq!(shipment.deliver_time, parcel.deliver_time);

    // The stock was committed: the units left on hand, nothing stays reserved.
    assert_eq!(shop.stock_level().await, (ON_HAND - UNITS, 0));
    assert_eq!(
        shop.reservation(order_id).await,
        product::ReservationStatus::Committed
    );
    assert_eq!(
        shop.coupon_status(&coupon.user_coupon_id).await,
        (common::UserCouponStatus::Used, order_id.to_owned())
    );

    // A delivered order can no longer be cancelled, and nothing is refunded.
    let refused = shop
        .orders
        .cancel_order(with_token(
            bff::CancelOrderRequest {
                order_id: order_id.to_owned(),
            },
            &shop.shopper,
        ))
        .await
        .expect_err("a finished order stays finished");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "ILLEGAL_STATE_TRANSITION");
    let payment = shop.payment(order_id).await.expect("the payment");
    assert_eq!(payment.status, i32::from(common::PaymentStatus::Succeeded));
    assert_eq!(payment.refunded_amount, jpy(0));
}
