//! Recording payouts when an order is paid, and moving their reversal targets when it is
//! refunded; both inside the caller's transaction (the one that writes `order.paid` or
//! `payment.refunded`), so a payout exists exactly when the payment's success committed.

use chrono::{DateTime, Utc};
use mercato_proto::mercato::events::v1::OrderCreated;
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::PaymentError;
use crate::payments::store::PaymentRow;
use crate::payouts::rules::{self, Line, PayoutState};
use crate::payouts::store::{self, NewPayout};

/// The order's lines with a seller and a total in the payment's currency. A line without them
/// cannot be paid out; it is logged and left to the platform rather than failing the payment.
fn lines(order: &OrderCreated, payment: &PaymentRow) -> Vec<Line> {
    let mut lines = Vec::with_capacity(order.lines.len());
    for line in &order.lines {
        let seller = Uuid::parse_str(&line.seller_id);
        let total = line
            .line_total
            .as_ref()
            .filter(|money| money.currency_code == payment.currency);
        match (seller, total) {
            (Ok(seller_id), Some(total)) => lines.push(Line {
                seller_id,
                line_total: total.amount_minor,
            }),
            _ => tracing::warn!(order.id = %payment.order_id, sku.id = %line.sku_id,
                seller.id = %line.seller_id, "order line without a seller or a total in the \
                payment's currency: no payout for it"),
        }
    }
    lines
}

/// Records the payouts of `payment`'s order (just SUCCEEDED, in the caller's transaction): one
/// per seller of its lines who has an account, due now. Returns how many were new.
pub async fn for_paid_order(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    fee_bps: u16,
    now: DateTime<Utc>,
) -> Result<usize, PaymentError> {
    let order = OrderCreated::decode(payment.order_snapshot.as_slice())
        .map_err(|e| PaymentError::Corrupt(format!("stored order snapshot: {e}")))?;
    let shares = match rules::shares(&lines(&order, payment), fee_bps) {
        Ok(shares) => shares,
        Err(error) => {
            tracing::warn!(order.id = %payment.order_id, %error, "no payouts for the order");
            return Ok(0);
        }
    };
    if shares.is_empty() {
        return Ok(0);
    }
    let sellers: Vec<Uuid> = shares.iter().map(|share| share.seller_id).collect();
    let accounts = store::accounts_of(conn, &sellers).await?;
    let mut recorded = 0;
    for share in shares {
        let Some((_, account)) = accounts
            .iter()
            .find(|(seller, _)| *seller == share.seller_id)
        else {
            continue;
        };
        let new = NewPayout {
            payout_id: Uuid::now_v7(),
            order_id: payment.order_id,
            payment_id: payment.payment_id,
            seller_id: share.seller_id,
            provider_account_id: account.clone(),
            currency: payment.currency.clone(),
            gross_amount: share.gross,
            platform_fee: share.fee,
            net_amount: share.net,
            fee_bps,
        };
        if store::insert_payout(conn, &new, now).await? {
            recorded += 1;
            tracing::info!(order.id = %payment.order_id, seller.id = %share.seller_id,
                payout.id = %new.payout_id, gross = share.gross, fee = share.fee, net = share.net,
                "payout recorded");
        }
    }
    if recorded > 0 {
        store::notify(conn).await?;
    }
    Ok(recorded)
}

/// After a refund of `payment` (the payment as it is now, in the refund's transaction): every
/// payout of its order must have the refunded fraction of its net reversed. A payout whose
/// transfer was never requested and that is now wholly refunded is REVERSED at once; the others
/// become due for the worker.
pub async fn on_refund(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    let payouts = store::lock_order_payouts(conn, payment.order_id).await?;
    let mut due = false;
    for payout in payouts {
        if payout.state()? == PayoutState::Reversed {
            continue;
        }
        let target =
            rules::reversal_target(payout.net_amount, payment.refunded_amount, payment.amount);
        if target <= payout.reversal_target {
            continue;
        }
        if !payout.transfer_requested && target == payout.net_amount {
            store::cancel_untransferred(conn, payout.payout_id, now).await?;
            tracing::info!(payout.id = %payout.payout_id, "payout withdrawn before its transfer: \
                the order was refunded");
        } else {
            store::set_reversal_target(conn, payout.payout_id, target, now, now).await?;
            due = true;
            tracing::info!(payout.id = %payout.payout_id, target, "payout reversal due");
        }
    }
    if due {
        store::notify(conn).await?;
    }
    Ok(())
}
