//! The coupons' SQL, as plain functions over `&mut PgConnection`: definitions, campaigns (with
//! the conditional increment at the heart of ClaimCoupon), user coupons with their history, the
//! idempotency keys of the admin creates, keyset paging and the expiry sweep. The callers own the
//! transactions.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest as _, Sha256};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::coupon::error::CouponError;
use crate::coupon::rules::{Campaign, Definition, Discount, Kind, Status};

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::hours(24);

/// A coupon definition as stored (in `coupons`, and snapshotted in `user_coupons`).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DefinitionRow {
    /// Name.
    pub name: String,
    /// Description (may be empty).
    pub description: String,
    /// `FIXED` or `PERCENT`.
    pub kind: String,
    /// ISO 4217 code of every amount.
    pub currency: String,
    /// FIXED: the amount off.
    pub fixed_discount: Option<i64>,
    /// PERCENT: the percentage.
    pub percent_off: Option<i32>,
    /// PERCENT: the cap.
    pub max_discount: Option<i64>,
    /// Smallest subtotal; `None` = no minimum.
    pub minimum_order_amount: Option<i64>,
    /// Days a user coupon stays usable.
    pub validity_days: i32,
}

impl DefinitionRow {
    /// The row of a validated definition in `currency`.
    pub fn new(definition: &Definition, currency: &str) -> Self {
        let (fixed_discount, percent_off, max_discount) = match definition.discount {
            Discount::Fixed { amount } => (Some(amount), None, None),
            Discount::Percent { percent, cap } => (None, Some(percent), cap),
        };
        Self {
            name: definition.name.clone(),
            description: definition.description.clone(),
            kind: definition.discount.kind().as_str().to_owned(),
            currency: currency.to_owned(),
            fixed_discount,
            percent_off,
            max_discount,
            minimum_order_amount: definition.minimum_order_amount,
            validity_days: definition.validity_days,
        }
    }

    /// The kind.
    pub fn kind(&self) -> Result<Kind, CouponError> {
        Kind::parse(&self.kind)
            .ok_or_else(|| CouponError::Corrupt(format!("unknown coupon kind {}", self.kind)))
    }

    /// How the discount is computed (the table's CHECK guarantees the fields match the kind).
    pub fn discount(&self) -> Result<Discount, CouponError> {
        match (self.kind()?, self.fixed_discount, self.percent_off) {
            (Kind::Fixed, Some(amount), _) => Ok(Discount::Fixed { amount }),
            (Kind::Percent, _, Some(percent)) => Ok(Discount::Percent {
                percent,
                cap: self.max_discount,
            }),
            (Kind::Fixed | Kind::Percent, _, _) => Err(CouponError::Corrupt(format!(
                "coupon {} lacks the fields of its kind",
                self.name
            ))),
        }
    }
}

/// One `coupons` row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct CouponRow {
    /// Id (UUID v7).
    pub coupon_id: Uuid,
    /// The definition.
    #[sqlx(flatten)]
    pub definition: DefinitionRow,
    /// When it was created.
    pub create_time: DateTime<Utc>,
}

/// A campaign with the definition of the coupon it issues.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct CampaignRow {
    /// Id (UUID v7).
    pub campaign_id: Uuid,
    /// The coupon it issues.
    pub coupon_id: Uuid,
    /// The campaign's name.
    pub campaign_name: String,
    /// Claims accepted from (inclusive).
    pub start_time: DateTime<Utc>,
    /// Claims refused from (exclusive).
    pub end_time: DateTime<Utc>,
    /// Coupons it may issue.
    pub total_quantity: i64,
    /// Coupons issued so far.
    pub issued_quantity: i64,
    /// When the campaign was created.
    pub campaign_create_time: DateTime<Utc>,
    /// The coupon's definition.
    #[sqlx(flatten)]
    pub definition: DefinitionRow,
    /// When the coupon was created.
    pub coupon_create_time: DateTime<Utc>,
}

/// What a claim needs to know before its transaction: the campaign and the coupon the caller
/// already holds from it, if any.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ClaimView {
    /// The campaign.
    #[sqlx(flatten)]
    pub campaign: CampaignRow,
    /// The caller's coupon of this campaign.
    pub held: Option<Uuid>,
}

/// One `user_coupons` row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct UserCouponRow {
    /// Id (UUID v7).
    pub user_coupon_id: Uuid,
    /// The holder.
    pub user_id: Uuid,
    /// The definition it was issued from.
    pub coupon_id: Uuid,
    /// The campaign it was claimed from; `None` when issued directly.
    pub campaign_id: Option<Uuid>,
    /// The stored status name.
    pub status: String,
    /// When it was issued.
    pub issue_time: DateTime<Utc>,
    /// When it stops being usable.
    pub expire_time: DateTime<Utc>,
    /// The order using it (exactly while USED).
    pub order_id: Option<Uuid>,
    /// The definition as it was when issued.
    #[sqlx(flatten)]
    pub definition: DefinitionRow,
    /// When the definition was created.
    pub coupon_create_time: DateTime<Utc>,
}

impl UserCouponRow {
    /// The stored status.
    pub fn status(&self) -> Result<Status, CouponError> {
        Status::parse(&self.status).ok_or_else(|| {
            CouponError::Corrupt(format!(
                "user coupon {} has the unknown status {}",
                self.user_coupon_id, self.status
            ))
        })
    }
}

/// What happened to a user coupon (`user_coupon_history.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Issued (claimed or given by an admin).
    Issued,
    /// Applied to an order.
    Used,
    /// Given back by a cancelled or expired order.
    Restored,
    /// Expired unused.
    Expired,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "ISSUED",
            Self::Used => "USED",
            Self::Restored => "RESTORED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ISSUED" => Some(Self::Issued),
            "USED" => Some(Self::Used),
            "RESTORED" => Some(Self::Restored),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// One `user_coupon_history` row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct HistoryRow {
    /// The user coupon.
    pub user_coupon_id: Uuid,
    /// What happened (stored name).
    pub kind: String,
    /// The order of USED and RESTORED entries.
    pub order_id: Option<Uuid>,
    /// When.
    pub event_time: DateTime<Utc>,
}

/// Where the next page starts: after `(time, id)` in the listing's order, for the same filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The ordering time of the last row returned, in microseconds.
    pub micros: i64,
    /// Its id.
    pub id: Uuid,
    /// Hash of the listing and filters the token was issued for.
    pub filter: String,
}

impl Cursor {
    /// The cursor after a row at `time` with `id`.
    pub fn after(time: DateTime<Utc>, id: Uuid, filter: &str) -> Self {
        Self {
            micros: time.timestamp_micros(),
            id,
            filter: filter.to_owned(),
        }
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}.{}",
            self.micros,
            self.id.simple(),
            self.filter
        ))
    }

    /// Parses a token issued for `filter`.
    pub fn decode(raw: &str, filter: &str) -> Result<Self, CouponError> {
        let text = URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(CouponError::InvalidPageToken)?;
        let mut parts = text.splitn(3, '.');
        let (Some(micros), Some(id), Some(token_filter)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(CouponError::InvalidPageToken);
        };
        if token_filter != filter {
            return Err(CouponError::InvalidPageToken);
        }
        Ok(Self {
            micros: micros.parse().map_err(|_| CouponError::InvalidPageToken)?,
            id: Uuid::parse_str(id).map_err(|_| CouponError::InvalidPageToken)?,
            filter: token_filter.to_owned(),
        })
    }

    /// The ordering time.
    pub fn time(&self) -> Result<DateTime<Utc>, CouponError> {
        DateTime::from_timestamp_micros(self.micros).ok_or(CouponError::InvalidPageToken)
    }
}

/// The hash that binds page tokens to one listing and its filters.
pub fn filter_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    URL_SAFE_NO_PAD.encode(&hasher.finalize()[..12])
}

fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(100) + 1
}

/// Splits the `limit + 1` rows fetched into the page and whether more follow.
fn page<T>(mut rows: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    (rows, more)
}

// --- definitions

/// Writes a new coupon and returns it as stored.
pub async fn insert_coupon(
    conn: &mut PgConnection,
    coupon_id: Uuid,
    definition: &DefinitionRow,
    now: DateTime<Utc>,
) -> Result<CouponRow, CouponError> {
    Ok(sqlx::query_as::<_, CouponRow>(
        "INSERT INTO coupons (coupon_id, name, description, kind, currency, fixed_discount, \
         percent_off, max_discount, minimum_order_amount, validity_days, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *",
    )
    .bind(coupon_id)
    .bind(&definition.name)
    .bind(&definition.description)
    .bind(&definition.kind)
    .bind(&definition.currency)
    .bind(definition.fixed_discount)
    .bind(definition.percent_off)
    .bind(definition.max_discount)
    .bind(definition.minimum_order_amount)
    .bind(definition.validity_days)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// The coupon, if it exists.
pub async fn find_coupon(
    conn: &mut PgConnection,
    coupon_id: Uuid,
) -> Result<Option<CouponRow>, CouponError> {
    Ok(
        sqlx::query_as::<_, CouponRow>("SELECT * FROM coupons WHERE coupon_id = $1")
            .bind(coupon_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// One page of coupons, newest first, after `after`.
pub async fn list_coupons(
    conn: &mut PgConnection,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<(Vec<CouponRow>, bool), CouponError> {
    let after_time = after.map(Cursor::time).transpose()?;
    let rows = sqlx::query_as::<_, CouponRow>(
        "SELECT * FROM coupons \
         WHERE ($1::timestamptz IS NULL OR (create_time, coupon_id) < ($1, $2)) \
         ORDER BY create_time DESC, coupon_id DESC LIMIT $3",
    )
    .bind(after_time)
    .bind(after.map(|c| c.id))
    .bind(fetch_limit(limit))
    .fetch_all(conn)
    .await?;
    Ok(page(rows, limit))
}

// --- campaigns

/// The campaign columns joined with its coupon's, as [`CampaignRow`] reads them.
macro_rules! campaign_select {
    () => {
        "SELECT c.campaign_id, c.coupon_id, c.name AS campaign_name, c.start_time, c.end_time, \
         c.total_quantity, c.issued_quantity, c.create_time AS campaign_create_time, \
         d.name, d.description, d.kind, d.currency, d.fixed_discount, d.percent_off, \
         d.max_discount, d.minimum_order_amount, d.validity_days, \
         d.create_time AS coupon_create_time"
    };
}

/// Writes a new campaign for `coupon_id` (which must exist).
pub async fn insert_campaign(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    coupon_id: Uuid,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> Result<(), CouponError> {
    sqlx::query(
        "INSERT INTO coupon_campaigns (campaign_id, coupon_id, name, start_time, end_time, \
         total_quantity, issued_quantity, create_time) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
    )
    .bind(campaign_id)
    .bind(coupon_id)
    .bind(&campaign.name)
    .bind(campaign.start_time)
    .bind(campaign.end_time)
    .bind(campaign.total_quantity)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The campaign with its coupon, if it exists.
pub async fn find_campaign(
    conn: &mut PgConnection,
    campaign_id: Uuid,
) -> Result<Option<CampaignRow>, CouponError> {
    Ok(sqlx::query_as::<_, CampaignRow>(concat!(
        campaign_select!(),
        " FROM coupon_campaigns c JOIN coupons d ON d.coupon_id = c.coupon_id \
          WHERE c.campaign_id = $1"
    ))
    .bind(campaign_id)
    .fetch_optional(conn)
    .await?)
}

/// The campaign with its coupon and the coupon `user_id` holds from it, in one round trip.
pub async fn claim_view(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    user_id: Uuid,
) -> Result<Option<ClaimView>, CouponError> {
    Ok(sqlx::query_as::<_, ClaimView>(concat!(
        campaign_select!(),
        ", (SELECT u.user_coupon_id FROM user_coupons u \
            WHERE u.campaign_id = c.campaign_id AND u.user_id = $2) AS held \
          FROM coupon_campaigns c JOIN coupons d ON d.coupon_id = c.coupon_id \
          WHERE c.campaign_id = $1"
    ))
    .bind(campaign_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}

/// One page of campaigns, soonest ending first, after `after`; only those ending after
/// `ending_after` when it is set.
pub async fn list_campaigns(
    conn: &mut PgConnection,
    ending_after: Option<DateTime<Utc>>,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<(Vec<CampaignRow>, bool), CouponError> {
    let after_time = after.map(Cursor::time).transpose()?;
    let rows = sqlx::query_as::<_, CampaignRow>(concat!(
        campaign_select!(),
        " FROM coupon_campaigns c JOIN coupons d ON d.coupon_id = c.coupon_id \
          WHERE ($1::timestamptz IS NULL OR c.end_time > $1) \
            AND ($2::timestamptz IS NULL OR (c.end_time, c.campaign_id) > ($2, $3)) \
          ORDER BY c.end_time, c.campaign_id LIMIT $4"
    ))
    .bind(ending_after)
    .bind(after_time)
    .bind(after.map(|c| c.id))
    .bind(fetch_limit(limit))
    .fetch_all(conn)
    .await?;
    Ok(page(rows, limit))
}

/// Takes one unit of the campaign: increments `issued_quantity` if a unit is left and `now` is
/// in the window, in one atomic statement. Returns `(issued, total)` after the increment, or
/// `None` when nothing was taken (sold out, not active, or unknown).
///
/// This is the FCFS gate: concurrent claims queue on the campaign row's lock, and each
/// re-evaluates the condition against the committed row before it increments, so at most
/// `total_quantity` increments ever commit (the CHECK `issued_quantity <= total_quantity` backs
/// that up).
pub async fn take_unit(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(i64, i64)>, CouponError> {
    Ok(sqlx::query_as::<_, (i64, i64)>(
        "UPDATE coupon_campaigns SET issued_quantity = issued_quantity + 1 \
         WHERE campaign_id = $1 AND issued_quantity < total_quantity \
           AND start_time <= $2 AND end_time > $2 \
         RETURNING issued_quantity, total_quantity",
    )
    .bind(campaign_id)
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

// --- user coupons

/// A user coupon about to be issued.
#[derive(Debug, Clone)]
pub struct NewUserCoupon<'a> {
    /// Its id.
    pub user_coupon_id: Uuid,
    /// The holder.
    pub user_id: Uuid,
    /// The definition's id.
    pub coupon_id: Uuid,
    /// The definition to snapshot.
    pub definition: &'a DefinitionRow,
    /// When the definition was created.
    pub coupon_create_time: DateTime<Utc>,
    /// The campaign it is claimed from; `None` for a direct issue.
    pub campaign_id: Option<Uuid>,
    /// Now.
    pub issue_time: DateTime<Utc>,
    /// `issue_time` + validity.
    pub expire_time: DateTime<Utc>,
}

/// Writes a new AVAILABLE user coupon with its ISSUED history entry. Returns `false` (writing
/// nothing) when the user already holds a coupon of the campaign; a concurrent claim by the same
/// user waits here until the other's transaction ends.
pub async fn insert_user_coupon(
    conn: &mut PgConnection,
    new: &NewUserCoupon<'_>,
) -> Result<bool, CouponError> {
    let d = new.definition;
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO user_coupons (user_coupon_id, user_id, coupon_id, campaign_id, status, \
         issue_time, expire_time, order_id, name, description, kind, currency, fixed_discount, \
         percent_off, max_discount, minimum_order_amount, validity_days, coupon_create_time) \
         VALUES ($1, $2, $3, $4, 'AVAILABLE', $5, $6, NULL, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16) \
         ON CONFLICT ON CONSTRAINT user_coupons_campaign_user_key DO NOTHING \
         RETURNING user_coupon_id",
    )
    .bind(new.user_coupon_id)
    .bind(new.user_id)
    .bind(new.coupon_id)
    .bind(new.campaign_id)
    .bind(new.issue_time)
    .bind(new.expire_time)
    .bind(&d.name)
    .bind(&d.description)
    .bind(&d.kind)
    .bind(&d.currency)
    .bind(d.fixed_discount)
    .bind(d.percent_off)
    .bind(d.max_discount)
    .bind(d.minimum_order_amount)
    .bind(d.validity_days)
    .bind(new.coupon_create_time)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        return Ok(false);
    }
    add_history(
        conn,
        new.user_coupon_id,
        EventKind::Issued,
        None,
        new.issue_time,
    )
    .await?;
    Ok(true)
}

/// The coupon `user_id` holds from `campaign_id`, if any.
pub async fn held_coupon(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Uuid>, CouponError> {
    Ok(sqlx::query_scalar(
        "SELECT user_coupon_id FROM user_coupons WHERE campaign_id = $1 AND user_id = $2",
    )
    .bind(campaign_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}

/// Appends one history entry.
pub async fn add_history(
    conn: &mut PgConnection,
    user_coupon_id: Uuid,
    kind: EventKind,
    order_id: Option<Uuid>,
    time: DateTime<Utc>,
) -> Result<(), CouponError> {
    sqlx::query(
        "INSERT INTO user_coupon_history (user_coupon_id, kind, order_id, event_time) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(user_coupon_id)
    .bind(kind.as_str())
    .bind(order_id)
    .bind(time)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user coupon, if it exists.
pub async fn find_user_coupon(
    conn: &mut PgConnection,
    user_coupon_id: Uuid,
) -> Result<Option<UserCouponRow>, CouponError> {
    Ok(
        sqlx::query_as::<_, UserCouponRow>("SELECT * FROM user_coupons WHERE user_coupon_id = $1")
            .bind(user_coupon_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The user coupon with its history, if it exists.
pub async fn user_coupon_with_history(
    conn: &mut PgConnection,
    user_coupon_id: Uuid,
) -> Result<Option<(UserCouponRow, Vec<HistoryRow>)>, CouponError> {
    let Some(row) = find_user_coupon(conn, user_coupon_id).await? else {
        return Ok(None);
    };
    let history = history_of(conn, &[user_coupon_id]).await?;
    Ok(Some((row, history)))
}

/// The user coupon, locked for the transaction.
pub async fn lock_user_coupon(
    conn: &mut PgConnection,
    user_coupon_id: Uuid,
) -> Result<Option<UserCouponRow>, CouponError> {
    Ok(sqlx::query_as::<_, UserCouponRow>(
        "SELECT * FROM user_coupons WHERE user_coupon_id = $1 FOR UPDATE",
    )
    .bind(user_coupon_id)
    .fetch_optional(conn)
    .await?)
}

/// Sets the status of a (locked) user coupon and the order using it (`Some` exactly for USED).
pub async fn set_status(
    conn: &mut PgConnection,
    user_coupon_id: Uuid,
    status: Status,
    order_id: Option<Uuid>,
) -> Result<(), CouponError> {
    sqlx::query("UPDATE user_coupons SET status = $2, order_id = $3 WHERE user_coupon_id = $1")
        .bind(user_coupon_id)
        .bind(status.as_str())
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The history of every coupon in `ids`, oldest first per coupon.
pub async fn history_of(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<HistoryRow>, CouponError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as::<_, HistoryRow>(
        "SELECT user_coupon_id, kind, order_id, event_time FROM user_coupon_history \
         WHERE user_coupon_id = ANY($1) ORDER BY user_coupon_id, seq",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// One page of `user_id`'s coupons, soonest expiring first, after `after`; only those whose
/// status at `now` (AVAILABLE past expiry counts as EXPIRED) is in `statuses` when it is not
/// empty.
pub async fn list_user_coupons(
    conn: &mut PgConnection,
    user_id: Uuid,
    statuses: &[Status],
    now: DateTime<Utc>,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<(Vec<UserCouponRow>, bool), CouponError> {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let after_time = after.map(Cursor::time).transpose()?;
    let rows = sqlx::query_as::<_, UserCouponRow>(
        "SELECT * FROM user_coupons \
         WHERE user_id = $1 \
           AND (cardinality($2::text[]) = 0 OR \
                (CASE WHEN status = 'AVAILABLE' AND expire_time <= $3 THEN 'EXPIRED' \
                      ELSE status END) = ANY($2)) \
           AND ($4::timestamptz IS NULL OR (expire_time, user_coupon_id) > ($4, $5)) \
         ORDER BY expire_time, user_coupon_id LIMIT $6",
    )
    .bind(user_id)
    .bind(&names)
    .bind(now)
    .bind(after_time)
    .bind(after.map(|c| c.id))
    .bind(fetch_limit(limit))
    .fetch_all(conn)
    .await?;
    Ok(page(rows, limit))
}

/// Marks up to `limit` AVAILABLE coupons past their expiry EXPIRED, each with an EXPIRED history
/// entry dated at its expiry (which is when it stopped being usable). Rows another sweeper or a
/// checkout holds are skipped. Returns their ids.
pub async fn expire_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, CouponError> {
    Ok(sqlx::query_scalar(
        "WITH due AS ( \
             SELECT user_coupon_id FROM user_coupons \
             WHERE status = 'AVAILABLE' AND expire_time <= $1 \
             ORDER BY expire_time LIMIT $2 FOR UPDATE SKIP LOCKED), \
         expired AS ( \
             UPDATE user_coupons u SET status = 'EXPIRED' FROM due \
             WHERE u.user_coupon_id = due.user_coupon_id \
             RETURNING u.user_coupon_id, u.expire_time) \
         INSERT INTO user_coupon_history (user_coupon_id, kind, order_id, event_time) \
         SELECT user_coupon_id, 'EXPIRED', NULL, expire_time FROM expired \
         RETURNING user_coupon_id",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

// --- idempotency keys

/// An idempotency key of an admin create, scoped to its caller and RPC.
#[derive(Debug, Clone)]
pub struct IdempotencyKey<'a> {
    /// The caller.
    pub caller_id: Uuid,
    /// `CreateCoupon`, `CreateCampaign` or `IssueCoupon`.
    pub rpc: &'static str,
    /// The client's key (validated).
    pub key: &'a str,
    /// SHA-256 of the request without its key.
    pub request_hash: Vec<u8>,
}

/// Claims `key` for `resource_id` in the caller's transaction, or returns the resource an
/// earlier request with this key created (`IDEMPOTENCY_KEY_REUSED` when that request differed).
/// A concurrent request with the same key waits on the primary key until this transaction ends,
/// then sees its row (or claims the key itself if this one rolled back).
pub async fn claim_key(
    conn: &mut PgConnection,
    key: &IdempotencyKey<'_>,
    resource_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, CouponError> {
    sqlx::query(
        "DELETE FROM coupon_idempotency_keys \
         WHERE caller_id = $1 AND rpc = $2 AND key = $3 AND create_time <= $4",
    )
    .bind(key.caller_id)
    .bind(key.rpc)
    .bind(key.key)
    .bind(now - IDEMPOTENCY_KEY_TTL)
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO coupon_idempotency_keys (caller_id, rpc, key, request_hash, resource_id, \
         create_time) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(key.caller_id)
    .bind(key.rpc)
    .bind(key.key)
    .bind(&key.request_hash)
    .bind(resource_id)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let (hash, existing): (Vec<u8>, Uuid) = sqlx::query_as(
        "SELECT request_hash, resource_id FROM coupon_idempotency_keys \
         WHERE caller_id = $1 AND rpc = $2 AND key = $3",
    )
    .bind(key.caller_id)
    .bind(key.rpc)
    .bind(key.key)
    .fetch_one(conn)
    .await?;
    if hash == key.request_hash {
        Ok(Some(existing))
    } else {
        Err(CouponError::IdempotencyKeyReused)
    }
}

/// Deletes every idempotency key older than its lifetime; returns how many.
pub async fn forget_expired_keys(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<u64, CouponError> {
    Ok(
        sqlx::query("DELETE FROM coupon_idempotency_keys WHERE create_time <= $1")
            .bind(now - IDEMPOTENCY_KEY_TTL)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_for_its_own_filters_only() {
        let time = DateTime::from_timestamp_micros(1_800_000_000_123_456).expect("valid");
        let id = Uuid::now_v7();
        let filter = filter_hash(&["ListMyCoupons", "AVAILABLE"]);
        let token = Cursor::after(time, id, &filter).encode();
        let decoded = Cursor::decode(&token, &filter).expect("same filters");
        assert_eq!(decoded.time().expect("valid time"), time);
        assert_eq!(decoded.id, id);
        let other = filter_hash(&["ListMyCoupons", "USED"]);
        assert!(matches!(
            Cursor::decode(&token, &other),
            Err(CouponError::InvalidPageToken)
        ));
        assert!(matches!(
            Cursor::decode("not a token", &filter),
            Err(CouponError::InvalidPageToken)
        ));
    }

    #[test]
    fn a_definition_row_keeps_only_the_fields_of_its_kind() {
        let definition = Definition {
            name: "Ten percent".to_owned(),
            description: String::new(),
            discount: Discount::Percent {
                percent: 10,
                cap: Some(500),
            },
            minimum_order_amount: None,
            validity_days: 7,
        };
        let row = DefinitionRow::new(&definition, "JPY");
        assert_eq!(row.kind, "PERCENT");
        assert_eq!(
            (row.fixed_discount, row.percent_off, row.max_discount),
            (None, Some(10), Some(500))
        );
        assert_eq!(row.discount().expect("consistent"), definition.discount);
    }
}
