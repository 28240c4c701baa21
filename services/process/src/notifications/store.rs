//! SQL of the notification outbox, over `&mut PgConnection`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{NotificationKind, NotificationStatus};
use crate::error::ProcessError;
use crate::paging::PageToken;

/// The wake-up channel of the sender.
pub const CHANNEL: &str = "process_notifications";

/// A stored notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    /// Id (UUIDv7).
    pub notification_id: Uuid,
    /// What makes it unique.
    pub dedupe_key: String,
    /// Recipient user.
    pub user_id: Uuid,
    /// Template name.
    pub kind: String,
    /// `LOG` or `EMAIL`.
    pub channel: String,
    /// Where it goes: `user:<id>` for the log sink and for an e-mail not yet attempted, the
    /// e-mail address once the SMTP sink looked it up.
    pub recipient: String,
    /// Rendered subject.
    pub subject: String,
    /// Rendered body.
    pub body: String,
    /// Template parameters.
    pub parameters: sqlx::types::Json<BTreeMap<String, String>>,
    /// The order it is about.
    pub order_id: Option<Uuid>,
    /// `PENDING`, `SENT`, `FAILED`.
    pub status: String,
    /// Deliveries tried.
    pub attempt_count: i32,
    /// Last delivery error.
    pub last_error: Option<String>,
    /// When the sender tries next (PENDING only); while a sender delivers it, the end of that
    /// sender's lease.
    pub next_attempt_time: Option<DateTime<Utc>>,
    /// Requested.
    pub create_time: DateTime<Utc>,
    /// Delivered.
    pub send_time: Option<DateTime<Utc>>,
}

impl NotificationRow {
    /// The parsed status.
    pub fn status(&self) -> Result<NotificationStatus, ProcessError> {
        NotificationStatus::parse(&self.status)
            .ok_or_else(|| ProcessError::Corrupt(format!("notification status {:?}", self.status)))
    }

    /// The parsed kind.
    pub fn kind(&self) -> Result<NotificationKind, ProcessError> {
        NotificationKind::parse(&self.kind)
            .ok_or_else(|| ProcessError::Corrupt(format!("notification kind {:?}", self.kind)))
    }
}

/// A notification to queue.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Unique key.
    pub dedupe_key: String,
    /// Recipient user.
    pub user_id: Uuid,
    /// Template.
    pub kind: NotificationKind,
    /// `LOG` or `EMAIL`.
    pub channel: &'static str,
    /// Where it goes.
    pub recipient: String,
    /// Rendered subject.
    pub subject: String,
    /// Rendered body.
    pub body: String,
    /// Template parameters.
    pub parameters: BTreeMap<String, String>,
    /// The order it is about.
    pub order_id: Option<Uuid>,
}

/// Queues a notification unless one with its dedupe key exists; whether it was queued now.
pub async fn insert_if_absent(
    conn: &mut PgConnection,
    new: &NewNotification,
    now: DateTime<Utc>,
) -> Result<bool, ProcessError> {
    let inserted = sqlx::query(
        "INSERT INTO notifications (notification_id, dedupe_key, user_id, kind, channel, \
             recipient, subject, body, parameters, order_id, status, next_attempt_time, \
             create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'PENDING', $11, $11) \
         ON CONFLICT ON CONSTRAINT notifications_dedupe_key_key DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(&new.dedupe_key)
    .bind(new.user_id)
    .bind(new.kind.as_str())
    .bind(new.channel)
    .bind(&new.recipient)
    .bind(&new.subject)
    .bind(&new.body)
    .bind(sqlx::types::Json(&new.parameters))
    .bind(new.order_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The notification `id`, locked until the transaction ends.
pub async fn get_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<NotificationRow>, ProcessError> {
    Ok(sqlx::query_as::<_, NotificationRow>(
        "SELECT * FROM notifications WHERE notification_id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Claims up to `limit` due PENDING notifications, skipping rows another sender holds, and
/// leases them until `lease_until`: their `next_attempt_time` moves there, so no other sender
/// takes them while they are being delivered outside any transaction, and a sender that dies
/// mid-delivery leaves them to be taken again once the lease runs out. The returned rows carry
/// the lease as their `next_attempt_time`, which [`record_sent`] and [`record_failed`] check.
pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    lease_until: DateTime<Utc>,
) -> Result<Vec<NotificationRow>, ProcessError> {
    let mut rows = sqlx::query_as::<_, NotificationRow>(
        "UPDATE notifications SET next_attempt_time = $3 \
         WHERE notification_id IN ( \
             SELECT notification_id FROM notifications \
             WHERE status = 'PENDING' AND next_attempt_time <= $1 \
             ORDER BY next_attempt_time LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING *",
    )
    .bind(now)
    .bind(limit)
    .bind(lease_until)
    .fetch_all(conn)
    .await?;
    rows.sort_by_key(|row| (row.create_time, row.notification_id));
    Ok(rows)
}

/// Records a delivery to `recipient` (SENT) of a notification claimed with `lease`; false when
/// the lease was lost (it ran out and another sender took the notification).
pub async fn record_sent(
    conn: &mut PgConnection,
    id: Uuid,
    lease: DateTime<Utc>,
    recipient: &str,
    now: DateTime<Utc>,
) -> Result<bool, ProcessError> {
    let updated = sqlx::query(
        "UPDATE notifications SET status = 'SENT', attempt_count = attempt_count + 1, \
             send_time = $3, next_attempt_time = NULL, last_error = NULL, recipient = $4 \
         WHERE notification_id = $1 AND status = 'PENDING' AND next_attempt_time = $2",
    )
    .bind(id)
    .bind(lease)
    .bind(now)
    .bind(recipient)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Records a failed delivery of a notification claimed with `lease`: retried at `next`, or
/// FAILED when `next` is None; the recipient becomes `recipient` when it was looked up. False
/// when the lease was lost.
pub async fn record_failed(
    conn: &mut PgConnection,
    id: Uuid,
    lease: DateTime<Utc>,
    recipient: Option<&str>,
    error: &str,
    next: Option<DateTime<Utc>>,
) -> Result<bool, ProcessError> {
    let updated = sqlx::query(
        "UPDATE notifications SET attempt_count = attempt_count + 1, last_error = $3, \
             next_attempt_time = $4, recipient = COALESCE($5, recipient), \
             status = CASE WHEN $4::timestamptz IS NULL THEN 'FAILED' ELSE 'PENDING' END \
         WHERE notification_id = $1 AND status = 'PENDING' AND next_attempt_time = $2",
    )
    .bind(id)
    .bind(lease)
    .bind(error)
    .bind(next)
    .bind(recipient)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Makes notifications claimed with `lease` but not attempted due again at `now`.
pub async fn release(
    conn: &mut PgConnection,
    ids: &[Uuid],
    lease: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), ProcessError> {
    sqlx::query(
        "UPDATE notifications SET next_attempt_time = $3 \
         WHERE notification_id = ANY($1) AND status = 'PENDING' AND next_attempt_time = $2",
    )
    .bind(ids)
    .bind(lease)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues a FAILED notification again with its attempts reset.
pub async fn requeue(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<NotificationRow, ProcessError> {
    Ok(sqlx::query_as::<_, NotificationRow>(
        "UPDATE notifications SET status = 'PENDING', attempt_count = 0, next_attempt_time = $2 \
         WHERE notification_id = $1 RETURNING *",
    )
    .bind(id)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Filters of a notification listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only to this user.
    pub user_id: Option<Uuid>,
    /// Only about this order.
    pub order_id: Option<Uuid>,
    /// Only these kinds (empty = all).
    pub kinds: Vec<NotificationKind>,
    /// Only these states (empty = all).
    pub statuses: Vec<NotificationStatus>,
}

impl ListFilter {
    /// The hash page tokens are bound to.
    pub fn hash(&self) -> String {
        let mut parts = vec![
            self.user_id.map(|id| id.to_string()).unwrap_or_default(),
            self.order_id.map(|id| id.to_string()).unwrap_or_default(),
        ];
        parts.extend(self.kinds.iter().map(|k| k.as_str().to_owned()));
        parts.push("|".to_owned());
        parts.extend(self.statuses.iter().map(|s| s.as_str().to_owned()));
        crate::paging::filter_hash(&parts)
    }
}

/// One page of notifications, newest first, and whether more follow.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    after: Option<&PageToken>,
    limit: usize,
) -> Result<(Vec<NotificationRow>, bool), ProcessError> {
    let kinds: Vec<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let after_time = after.and_then(|t| DateTime::<Utc>::from_timestamp_micros(t.create_micros));
    let fetch = i64::try_from(limit).unwrap_or(100) + 1;
    let rows = sqlx::query_as::<_, NotificationRow>(
        "SELECT * FROM notifications \
         WHERE ($1::uuid IS NULL OR user_id = $1) \
           AND ($2::uuid IS NULL OR order_id = $2) \
           AND (cardinality($3::text[]) = 0 OR kind = ANY($3)) \
           AND (cardinality($4::text[]) = 0 OR status = ANY($4)) \
           AND ($5::timestamptz IS NULL OR (create_time, notification_id) < ($5, $6)) \
         ORDER BY create_time DESC, notification_id DESC LIMIT $7",
    )
    .bind(filter.user_id)
    .bind(filter.order_id)
    .bind(&kinds)
    .bind(&statuses)
    .bind(after_time)
    .bind(after.map(|t| t.id))
    .bind(fetch)
    .fetch_all(conn)
    .await?;
    let more = rows.len() > limit;
    Ok((rows.into_iter().take(limit).collect(), more))
}
