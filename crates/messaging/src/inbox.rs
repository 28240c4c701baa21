//! The consumer inbox: message ids recorded in the same transaction as the effect they caused.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::Error;

/// Records that `consumer` is applying `message_id`. Returns `false` when it
/// was already recorded, i.e. the message is a redelivery whose effect has
/// already committed and must not be applied again.
///
/// Call it inside the transaction that applies the effect: if that
/// transaction rolls back, the record goes with it and a redelivery is
/// processed normally. A concurrent duplicate blocks on the primary key until
/// the first transaction ends, then sees the record.
pub async fn record(
    conn: &mut PgConnection,
    consumer: &str,
    message_id: &str,
) -> Result<bool, Error> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) \
         ON CONFLICT (consumer, message_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Whether `consumer` has applied `message_id`.
pub async fn contains(
    conn: &mut PgConnection,
    consumer: &str,
    message_id: &str,
) -> Result<bool, Error> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM inbox WHERE consumer = $1 AND message_id = $2")
            .bind(consumer)
            .bind(message_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Deletes inbox records older than `retention`. Keep it well above the
/// longest time a message can spend in retry queues or the DLQ before a
/// replay, or a late duplicate would be applied again.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, Error> {
    let deleted =
        sqlx::query("DELETE FROM inbox WHERE processed_at < now() - make_interval(secs => $1)")
            .bind(retention.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected();
    Ok(deleted)
}
