//! What shoppers do through the BFF, shared by the journey scenarios: sign up, charge a wallet,
//! check out, pay on the sandbox page as a browser would, and follow an order with `WatchOrder`
//! until it ends.

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::{Money, OrderStatus, PostalAddress};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use uuid::Uuid;

use super::edge;
use crate::measure::Failure;

/// The password every benchmark shopper registers with.
pub const PASSWORD: &str = "benchmark-password";

/// A signed-up shopper.
#[derive(Debug, Clone)]
pub struct Buyer {
    /// The account's id.
    pub user_id: Uuid,
    /// `Bearer <access token>`.
    pub bearer: MetadataValue<Ascii>,
}

impl Buyer {
    /// `message` as this buyer's request.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        request
    }
}

/// Signs up `count` shoppers through the BFF, `concurrency` at a time over `channels` (seeding,
/// not measured; a progress line every 1,000).
pub async fn register_buyers(
    channels: &[Channel],
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Buyer>> {
    let started = std::time::Instant::now();
    let mut buyers = Vec::with_capacity(count);
    let mut registrations = futures::stream::iter(0..count)
        .map(|index| {
            let channel = channels[index % channels.len()].clone();
            async move {
                let (token, user_id) = edge::register(&channel).await?;
                let bearer = format!("Bearer {token}")
                    .parse()
                    .context("the access token is not a valid header value")?;
                Ok::<_, anyhow::Error>(Buyer { user_id, bearer })
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(buyer) = registrations.next().await {
        buyers.push(buyer?);
        if buyers.len() % 1_000 == 0 {
            #[allow(clippy::print_stderr, reason = "seeding progress for the operator")]
            {
                eprintln!(
                    "  registered {}/{count} shoppers ({:.0} s)",
                    buyers.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(buyers)
}

/// `amount_minor` yen.
pub fn jpy(amount_minor: i64) -> Option<Money> {
    Some(Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

/// Charges `buyer`'s points wallet with `amount` points through the BFF (one charge, its own key).
pub async fn charge(channel: &Channel, buyer: &Buyer, amount: i64) -> anyhow::Result<()> {
    bff::wallet_service_client::WalletServiceClient::new(channel.clone())
        .charge_points(buyer.request(bff::ChargePointsRequest {
            amount: jpy(amount),
            idempotency_key: Uuid::new_v4().to_string(),
        }))
        .await
        .context("ChargePoints while seeding")?;
    Ok(())
}

/// The shipping address of every benchmark order.
pub fn address() -> PostalAddress {
    PostalAddress {
        recipient_name: "Benchmark Shopper".to_owned(),
        recipient_name_kana: String::new(),
        country_code: "JP".to_owned(),
        postal_code: "150-0001".to_owned(),
        region: "東京都".to_owned(),
        locality: "渋谷区".to_owned(),
        address_line1: "神宮前1-2-3".to_owned(),
        address_line2: String::new(),
        phone_number: "090-1234-5678".to_owned(),
    }
}

/// The status of an order as the BFF sent it.
pub fn status_of(order: &bff::Order) -> OrderStatus {
    OrderStatus::try_from(order.status).unwrap_or(OrderStatus::Unspecified)
}

/// Whether no further transition can happen.
pub fn is_terminal(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Finished | OrderStatus::Cancelled | OrderStatus::Expired
    )
}

/// The sandbox payment page's URL once the payment service attached the payment to the order
/// (`PAYMENT_NOT_READY` until then, asked again every 20 ms), within `patience`.
pub async fn payment_url(
    orders: &mut bff::order_service_client::OrderServiceClient<Channel>,
    buyer: &Buyer,
    order_id: &str,
    patience: Duration,
) -> Result<String, Failure> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let answer = orders
            .get_order_payment(buyer.request(bff::GetOrderPaymentRequest {
                order_id: order_id.to_owned(),
            }))
            .await;
        match answer {
            Ok(response) => {
                let url = response
                    .into_inner()
                    .payment
                    .map(|payment| payment.payment_url)
                    .unwrap_or_default();
                if !url.is_empty() {
                    return Ok(url);
                }
            }
            Err(status) => {
                let failure = Failure::from(&status);
                if failure.0 != "FailedPrecondition/PAYMENT_NOT_READY" {
                    return Err(Failure(format!("GetOrderPayment {}", failure.0)));
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure("payment never attached".to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a browser does on the sandbox page: loads it, finds the form whose button says `Pay`
/// and posts it (the form's action is a path on the page's origin); the payment service signs
/// the provider's event and runs it through its own webhook verification.
pub async fn pay_on_sandbox_page(http: &reqwest::Client, page_url: &str) -> Result<(), Failure> {
    let failure = |what: &str| Failure(format!("sandbox page: {what}"));
    let page = http
        .get(page_url)
        .send()
        .await
        .map_err(|_| failure("unreachable"))?;
    if !page.status().is_success() {
        return Err(failure(&format!("GET {}", page.status().as_u16())));
    }
    let html = page.text().await.map_err(|_| failure("unreadable"))?;
    let action = html
        .split("<form")
        .skip(1)
        .find(|form| form.contains(">Pay</button>"))
        .and_then(|form| form.split("action=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| failure("no Pay form"))?;
    let url = reqwest::Url::parse(page_url)
        .and_then(|base| base.join(action))
        .map_err(|_| failure("bad form action"))?;
    let posted = http
        .post(url)
        .send()
        .await
        .map_err(|_| failure("Pay unreachable"))?;
    if posted.status().is_success() {
        Ok(())
    } else {
        Err(failure(&format!("Pay {}", posted.status().as_u16())))
    }
}

/// Follows `order_id` with `WatchOrder` until it ends (watching again when the BFF ends a watch
/// UNAVAILABLE, as the storefront does), within `patience`; the terminal status.
pub async fn watch_until_terminal(
    orders: &mut bff::order_service_client::OrderServiceClient<Channel>,
    buyer: &Buyer,
    order_id: &str,
    patience: Duration,
) -> Result<OrderStatus, Failure> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut last = OrderStatus::Unspecified;
    let timed_out = |last: OrderStatus| Failure(format!("still {} at the SLA", last.as_str_name()));
    loop {
        let started = tokio::time::timeout_at(
            deadline,
            orders.watch_order(buyer.request(bff::WatchOrderRequest {
                order_id: order_id.to_owned(),
            })),
        )
        .await
        .map_err(|_| timed_out(last))?;
        let mut stream = match started {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(status) => return Err(Failure(format!("WatchOrder {}", Failure::from(&status).0))),
        };
        loop {
            let message = tokio::time::timeout_at(deadline, stream.message())
                .await
                .map_err(|_| timed_out(last))?;
            match message {
                Ok(Some(bff::WatchOrderResponse { order: Some(order) })) => {
                    last = status_of(&order);
                    if is_terminal(last) {
                        return Ok(last);
                    }
                }
                Ok(Some(bff::WatchOrderResponse { order: None })) => {}
                // A watch ends OK only at a terminal state, which was returned above.
                Ok(None) => return Err(Failure("watch ended early".to_owned())),
                Err(status) if status.code() == tonic::Code::Unavailable => break,
                Err(status) => {
                    return Err(Failure(format!("WatchOrder {}", Failure::from(&status).0)));
                }
            }
        }
    }
}
