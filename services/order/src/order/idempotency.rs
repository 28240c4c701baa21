//! CreateOrder's idempotency keys (`order_requests`): scoped per user, bound to a hash of the
//! request, and claimed before any work, so concurrent duplicates create exactly one order.
//!
//! The first request inserts a RUNNING row holding the new order's id and a lease; duplicates
//! find the row and wait (bounded) until it is DONE (they replay the order) or FAILED (they
//! replay the stored status byte for byte). A RUNNING row whose lease ran out belongs to a
//! request that died: the next duplicate takes it over with the same order id, which the stock
//! reservation (idempotent per order id) and the final transaction tolerate. A transient failure
//! deletes the row, so a retry with the same key runs again.

use std::time::Duration;

use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::order::error::OrderError;

/// How long the first request holds its key before a duplicate may take over.
pub const LEASE: Duration = Duration::from_secs(30);
/// How long a duplicate waits for the first request before answering IN_PROGRESS.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long keys are remembered.
pub const RETENTION_HOURS: i64 = 24;

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// This request owns the key and must create the order with this id.
    Owner(Uuid),
    /// An earlier request with this key created this order.
    Done(Uuid),
    /// An earlier request with this key failed with this status.
    Failed(tonic::Status),
}

#[derive(Debug, FromRow)]
struct RequestRow {
    fingerprint: Vec<u8>,
    order_id: Uuid,
    state: String,
    error_code: Option<i32>,
    error_message: Option<String>,
    error_details: Option<Vec<u8>>,
}

fn lease_secs() -> f64 {
    LEASE.as_secs_f64()
}

/// Claims `key` for `user_id` with a fresh order id, or reports what an earlier request with
/// the key did, waiting up to [`WAIT`] for one still running.
pub async fn claim(
    pool: &PgPool,
    user_id: Uuid,
    key: &str,
    fingerprint: &[u8],
) -> Result<Claim, OrderError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        let fresh = Uuid::now_v7();
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO order_requests (user_id, idempotency_key, fingerprint, order_id, state, \
             lease_until, create_time) \
             VALUES ($1, $2, $3, $4, 'RUNNING', now() + make_interval(secs => $5), now()) \
             ON CONFLICT (user_id, idempotency_key) DO UPDATE \
               SET fingerprint = EXCLUDED.fingerprint, order_id = EXCLUDED.order_id, \
                   state = 'RUNNING', error_code = NULL, error_message = NULL, \
                   error_details = NULL, lease_until = EXCLUDED.lease_until, \
                   create_time = EXCLUDED.create_time \
               WHERE order_requests.create_time < now() - make_interval(hours => $6) \
             RETURNING order_id",
        )
        .bind(user_id)
        .bind(key)
        .bind(fingerprint)
        .bind(fresh)
        .bind(lease_secs())
        .bind(i32::try_from(RETENTION_HOURS).unwrap_or(24))
        .fetch_optional(pool)
        .await?;
        if let Some(order_id) = inserted {
            return Ok(Claim::Owner(order_id));
        }
        let Some(row) = sqlx::query_as::<_, RequestRow>(
            "SELECT fingerprint, order_id, state, error_code, error_message, error_details \
             FROM order_requests WHERE user_id = $1 AND idempotency_key = $2",
        )
        .bind(user_id)
        .bind(key)
        .fetch_optional(pool)
        .await?
        else {
            // Deleted by a transient failure in between: claim again.
            continue;
        };
        if row.fingerprint != fingerprint {
            return Err(OrderError::IdempotencyKeyReused);
        }
        match row.state.as_str() {
            "DONE" => return Ok(Claim::Done(row.order_id)),
            "FAILED" => {
                let code = tonic::Code::from_i32(row.error_code.unwrap_or(2));
                let message = row.error_message.unwrap_or_default();
                let details = row.error_details.unwrap_or_default();
                return Ok(Claim::Failed(tonic::Status::with_details(
                    code,
                    message,
                    details.into(),
                )));
            }
            _ => {}
        }
        let taken: Option<Uuid> = sqlx::query_scalar(
            "UPDATE order_requests SET lease_until = now() + make_interval(secs => $3) \
             WHERE user_id = $1 AND idempotency_key = $2 AND state = 'RUNNING' \
               AND lease_until < now() RETURNING order_id",
        )
        .bind(user_id)
        .bind(key)
        .bind(lease_secs())
        .fetch_optional(pool)
        .await?;
        if let Some(order_id) = taken {
            tracing::warn!(order.id = %order_id, "took over an abandoned checkout request");
            return Ok(Claim::Owner(order_id));
        }
        if started.elapsed() >= WAIT {
            return Err(OrderError::RequestInProgress);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Marks the key DONE, in the order's transaction.
pub async fn complete(conn: &mut PgConnection, user_id: Uuid, key: &str) -> Result<(), OrderError> {
    sqlx::query(
        "UPDATE order_requests SET state = 'DONE' WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the request's final failure, to be replayed to every later request with the key.
pub async fn fail(
    pool: &PgPool,
    user_id: Uuid,
    key: &str,
    status: &tonic::Status,
) -> Result<(), OrderError> {
    sqlx::query(
        "UPDATE order_requests SET state = 'FAILED', error_code = $3, error_message = $4, \
         error_details = $5 WHERE user_id = $1 AND idempotency_key = $2 AND state = 'RUNNING'",
    )
    .bind(user_id)
    .bind(key)
    .bind(status.code() as i32)
    .bind(status.message())
    .bind(status.details())
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets the key after a transient failure, so a retry runs the request again.
pub async fn release(pool: &PgPool, user_id: Uuid, key: &str) -> Result<(), OrderError> {
    sqlx::query(
        "DELETE FROM order_requests WHERE user_id = $1 AND idempotency_key = $2 \
         AND state = 'RUNNING'",
    )
    .bind(user_id)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}
