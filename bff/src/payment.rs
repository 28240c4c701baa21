//! An order's payment as the browser sees it: `OrderService.GetOrderPayment` for the buyer and
//! the payment views of the admin console, backed by the payment service's `PaymentService`.
//!
//! The buyer's payment is found through the order, never by a user id: the order service is
//! asked for the caller's order (someone else's, or a malformed or unknown id, is its NOT_FOUND
//! or INVALID_ARGUMENT), and the payment it names is then read from the payment service as the
//! same caller (which shows only the caller's own payments). Until the payment service has
//! attached a payment to the order the answer is `FAILED_PRECONDITION` / `PAYMENT_NOT_READY`:
//! the browser keeps watching the order, whose `payment_id` appears with AWAITING_PAYMENT. By
//! then a SANDBOX payment carries its page URL and a STRIPE one its client secret, since the
//! payment service attaches a payment only after its provider intent exists.
//!
//! The client secret goes only to the payer; the admin views never carry it. The publishable
//! key (`STRIPE_PUBLISHABLE_KEY`) and, with it, where Stripe.js is loaded from (`STRIPE_JS_URL`)
//! are added to the payer's STRIPE payments, so the storefront needs no Stripe setting of its own
//! and one build serves Stripe and a local fake alike.

use mercato_platform::error::{self as errors, ErrorCode};
use mercato_platform::grpc::ClientChannel;
use mercato_platform::principal::Principal;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::PaymentMethod;
use mercato_proto::mercato::order::v1 as order;
use mercato_proto::mercato::payment::v1 as payment;
use order::order_service_client::OrderServiceClient;
use payment::payment_service_client::PaymentServiceClient;
use tonic::Status;
use tonic_types::ErrorDetails;

use crate::error::{broken_contract, downstream};
use crate::order::{View, as_buyer};

/// The buyer's reads of payments: the payment service, and the key and script URL the browser
/// needs for Stripe.js.
#[derive(Debug, Clone)]
pub struct OrderPayments {
    payments: PaymentServiceClient<ClientChannel>,
    publishable_key: String,
    stripe_js_url: String,
}

impl OrderPayments {
    /// Reads over a payment-service channel; `publishable_key` may be empty (then no Stripe.js
    /// URL is sent either: without a key there is no card form to load it for).
    pub fn new(
        payment_channel: ClientChannel,
        publishable_key: String,
        stripe_js_url: String,
    ) -> Self {
        Self {
            payments: PaymentServiceClient::new(payment_channel),
            publishable_key,
            stripe_js_url,
        }
    }

    /// The payment of `buyer`'s order `order_id`, as its payer sees it.
    pub(crate) async fn of_order(
        &self,
        orders: &OrderServiceClient<ClientChannel>,
        buyer: &Principal,
        order_id: String,
    ) -> Result<bff::Payment, Status> {
        let order::GetOrderResponse { order } = orders
            .clone()
            .get_order(as_buyer(buyer, order::GetOrderRequest { order_id }))
            .await
            .map_err(downstream)?
            .into_inner();
        let order = order.ok_or_else(|| broken_contract("GetOrderResponse.order"))?;
        let payment_id = match order.payment {
            Some(order::OrderPayment { payment_id, .. }) if !payment_id.is_empty() => payment_id,
            Some(_) | None => return Err(not_ready(&order.order_id)),
        };
        let payment::GetPaymentResponse { payment } = self
            .payments
            .clone()
            .get_payment(as_buyer(buyer, payment::GetPaymentRequest { payment_id }))
            .await
            .map_err(downstream)?
            .into_inner();
        let payment = payment.ok_or_else(|| broken_contract("GetPaymentResponse.payment"))?;
        Ok(with_stripe_js(
            public_payment(payment, View::Buyer, &self.publishable_key),
            &self.stripe_js_url,
        ))
    }
}

/// `FAILED_PRECONDITION` / `PAYMENT_NOT_READY`: the order exists but has no payment attached
/// yet.
fn not_ready(order_id: &str) -> Status {
    errors::status(
        ErrorCode::FailedPrecondition,
        "PAYMENT_NOT_READY",
        "the order's payment is not ready yet; watch the order until it is AWAITING_PAYMENT",
        ErrorDetails::with_precondition_failure(vec![errors::precondition_violation(
            "PAYMENT_NOT_READY",
            format!("orders/{order_id}"),
            "no payment is attached to the order yet",
        )]),
    )
}

/// An internal payment as the public API shows it. The payer's id, the provider's ids and
/// failure code, the refunds and the versions stay internal; the client secret and the
/// publishable key reach only the payer.
pub(crate) fn public_payment(
    found: payment::Payment,
    view: View,
    publishable_key: &str,
) -> bff::Payment {
    let payment::Payment {
        payment_id,
        order_id,
        user_id: _,
        method,
        status,
        amount,
        refunded_amount,
        payment_url,
        client_secret,
        provider_payment_id: _,
        failure_code: _,
        failure_message,
        refunds: _,
        version: _,
        create_time,
        update_time: _,
        settle_time,
    } = found;
    let stripe = method == i32::from(PaymentMethod::Stripe);
    let (client_secret, publishable_key) = match view {
        View::Buyer if stripe => (client_secret, publishable_key.to_owned()),
        View::Buyer | View::Admin => (String::new(), String::new()),
    };
    bff::Payment {
        payment_id,
        order_id,
        method,
        status,
        amount,
        refunded_amount,
        payment_url,
        client_secret,
        publishable_key,
        failure_message,
        create_time,
        settle_time,
        stripe_js_url: String::new(),
    }
}

/// `shown` with the Stripe.js URL beside its publishable key, which only a payer's STRIPE
/// payment carries.
fn with_stripe_js(mut shown: bff::Payment, stripe_js_url: &str) -> bff::Payment {
    if !shown.publishable_key.is_empty() {
        stripe_js_url.clone_into(&mut shown.stripe_js_url);
    }
    shown
}

/// The public payment, or INTERNAL when the payment service answered without one.
pub(crate) fn payment_of(
    found: Option<payment::Payment>,
    view: View,
    what: &str,
) -> Result<bff::Payment, Status> {
    found
        .map(|found| public_payment(found, view, ""))
        .ok_or_else(|| broken_contract(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe_payment() -> payment::Payment {
        payment::Payment {
            payment_id: "p".to_owned(),
            method: PaymentMethod::Stripe.into(),
            client_secret: "pi_1_secret_2".to_owned(),
            user_id: "u".to_owned(),
            provider_payment_id: "pi_1".to_owned(),
            ..payment::Payment::default()
        }
    }

    #[test]
    fn only_the_payer_sees_a_stripe_client_secret_and_the_publishable_key() {
        let buyer = public_payment(stripe_payment(), View::Buyer, "pk_test_1");
        assert_eq!(buyer.client_secret, "pi_1_secret_2");
        assert_eq!(buyer.publishable_key, "pk_test_1");
        let admin = public_payment(stripe_payment(), View::Admin, "pk_test_1");
        assert!(admin.client_secret.is_empty() && admin.publishable_key.is_empty());
    }

    #[test]
    fn the_stripe_js_url_travels_with_the_publishable_key_only() {
        let url = "https://js.stripe.com/v3/";
        let buyer = with_stripe_js(
            public_payment(stripe_payment(), View::Buyer, "pk_test_1"),
            url,
        );
        assert_eq!(buyer.stripe_js_url, url);
        let keyless = with_stripe_js(public_payment(stripe_payment(), View::Buyer, ""), url);
        assert!(keyless.stripe_js_url.is_empty());
        let mut sandbox = stripe_payment();
        sandbox.method = PaymentMethod::Sandbox.into();
        let sandbox = with_stripe_js(public_payment(sandbox, View::Buyer, "pk_test_1"), url);
        assert!(sandbox.stripe_js_url.is_empty());
        let admin = with_stripe_js(
            public_payment(stripe_payment(), View::Admin, "pk_test_1"),
            url,
        );
        assert!(admin.stripe_js_url.is_empty());
    }

    #[test]
    fn other_methods_carry_no_stripe_credentials() {
        let mut sandbox = stripe_payment();
        sandbox.method = PaymentMethod::Sandbox.into();
        let shown = public_payment(sandbox, View::Buyer, "pk_test_1");
        assert!(shown.client_secret.is_empty() && shown.publishable_key.is_empty());
    }
}
