//! Applies one command of the state machine to one order, in the caller's transaction: lock the
//! row, ask [`state::decide`], and for a move write the new status, the history row, the
//! compensation (the coupon restored on cancellation and expiry) and the event — so the change
//! and its event commit together or not at all. A replayed command changes nothing and
//! publishes nothing.

use chrono::{DateTime, Utc};
use mercato_proto::mercato::common::v1::OrderCancellationReason;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::coupon::apply as coupons;
use crate::order::error::OrderError;
use crate::order::events;
use crate::order::model::StoredOrder;
use crate::order::state::{self, Command, Decision, Status};
use crate::order::store::{self, Facts};

/// What a command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The order after the command.
    pub order: StoredOrder,
    /// Whether it moved (false: a replay, nothing written but missing facts).
    pub moved: bool,
}

/// One command with what it records.
#[derive(Debug, Clone)]
pub struct Request {
    /// What to do.
    pub command: Command,
    /// Facts to record with it.
    pub facts: Facts,
    /// Only this buyer's order (others look NOT_FOUND); `None` for admins, services, events.
    pub owner: Option<Uuid>,
}

impl Request {
    /// `command` with no facts, for any owner.
    pub fn new(command: Command) -> Self {
        Self {
            command,
            facts: Facts::default(),
            owner: None,
        }
    }

    /// Records `facts` too.
    #[must_use]
    pub fn with_facts(mut self, facts: Facts) -> Self {
        self.facts = facts;
        self
    }

    /// Restricts the command to `owner`'s order.
    #[must_use]
    pub fn owned_by(mut self, owner: Option<Uuid>) -> Self {
        self.owner = owner;
        self
    }
}

/// Applies `request` to the order `order_id` on `conn` (which must be inside a transaction).
pub async fn apply(
    conn: &mut PgConnection,
    order_id: Uuid,
    request: Request,
    now: DateTime<Utc>,
) -> Result<Outcome, OrderError> {
    let row = store::lock(conn, order_id)
        .await?
        .filter(|row| request.owner.is_none_or(|owner| owner == row.user_id))
        .ok_or_else(|| OrderError::order_not_found(order_id))?;
    let from = row.status()?;
    match state::decide(from, request.command) {
        Decision::Illegal => Err(OrderError::IllegalTransition {
            from,
            command: request.command,
        }),
        Decision::AlreadyDone => {
            let row = if request.command == Command::AttachPayment
                && row.payment_id.is_none()
                && request.facts.payment_id.is_some()
            {
                store::fill_facts(conn, &row, &request.facts).await?
            } else {
                row
            };
            Ok(Outcome {
                order: store::complete(conn, row).await?,
                moved: false,
            })
        }
        Decision::Move(to) => {
            let mut facts = request.facts;
            if to == Status::Cancelled && facts.cancellation_reason.is_none() {
                facts.cancellation_reason = Some(OrderCancellationReason::UserRequested as i16);
            }
            let moved = store::apply_move(conn, &row, to, &facts, now).await?;
            if matches!(to, Status::Cancelled | Status::Expired)
                && let Some(user_coupon_id) = moved.user_coupon_id
            {
                coupons::restore_for_order(conn, user_coupon_id, order_id, now).await?;
            }
            let order = store::complete(conn, moved).await?;
            publish(conn, &order, from, to, now).await?;
            Ok(Outcome { order, moved: true })
        }
    }
}

/// Writes the event of the move `from` ▶ `to` (PAID publishes nothing: `order.paid` is the
/// payment service's fact, and this move one of its effects).
async fn publish(
    conn: &mut PgConnection,
    order: &StoredOrder,
    from: Status,
    to: Status,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    match to {
        Status::AwaitingPayment => events::awaiting_payment(conn, order).await,
        Status::Cancelled => {
            let reason = order
                .order
                .cancellation_reason
                .and_then(|r| OrderCancellationReason::try_from(i32::from(r)).ok())
                .unwrap_or(OrderCancellationReason::UserRequested);
            events::cancelled(conn, order, from.to_proto(), reason, now).await
        }
        Status::Expired => events::expired(conn, order, from.to_proto(), now).await,
        Status::Shipped => events::shipped(conn, order).await,
        Status::Finished => events::finished(conn, order).await,
        Status::Paid | Status::Pending => Ok(()),
    }
}
