//! SQL of the user service: plain functions over `&mut PgConnection`; the use cases in `app.rs`
//! own the transactions.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::PostalAddress;
use crate::keys::{KeyMaterial, StoredKey};

/// Unique index on live e-mail addresses.
pub const EMAIL_KEY: &str = "users_live_email_key";
/// Unique index on live (issuer, subject) pairs.
pub const IDENTITY_KEY: &str = "users_live_identity_key";

/// An account row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub user_id: Uuid,
    /// Normalised e-mail.
    pub email: String,
    /// Whether the e-mail is verified.
    pub email_verified: bool,
    /// argon2id PHC string (local accounts).
    pub password_hash: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Profile description.
    pub description: String,
    /// Role names, sorted.
    pub roles: Vec<String>,
    /// Issuer.
    pub issuer: String,
    /// Subject at the issuer.
    pub subject: String,
    /// Whether an address is saved.
    pub has_shipping_address: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last profile change.
    pub updated_at: DateTime<Utc>,
    /// Soft deletion.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Last login or refresh.
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Selects every `UserRow` column from `users u`.
macro_rules! user_select {
    () => {
        "SELECT u.user_id, u.email, u.email_verified, u.password_hash, u.display_name, \
         u.description, u.roles, u.issuer, u.subject, \
         EXISTS (SELECT 1 FROM shipping_addresses a WHERE a.user_id = u.user_id) \
           AS has_shipping_address, \
         u.created_at, u.updated_at, u.deleted_at, u.last_login_at FROM users u "
    };
}

/// What a new account starts with.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Normalised e-mail.
    pub email: &'a str,
    /// Verified (external accounts).
    pub email_verified: bool,
    /// argon2id hash, for local accounts.
    pub password_hash: Option<&'a str>,
    /// Display name.
    pub display_name: &'a str,
    /// Issuer.
    pub issuer: &'a str,
    /// Subject; `None` means the new user id (local accounts).
    pub subject: Option<&'a str>,
}

/// Inserts an account holding the buyer role.
pub async fn insert_user(
    conn: &mut PgConnection,
    new: &NewUser<'_>,
) -> Result<UserRow, sqlx::Error> {
    let user_id = Uuid::now_v7();
    let subject = new
        .subject
        .map_or_else(|| user_id.to_string(), str::to_owned);
    sqlx::query(
        "INSERT INTO users (user_id, email, email_verified, password_hash, display_name, issuer, \
         subject) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(new.email)
    .bind(new.email_verified)
    .bind(new.password_hash)
    .bind(new.display_name)
    .bind(new.issuer)
    .bind(subject)
    .execute(&mut *conn)
    .await?;
    find_user(conn, user_id, false)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// A live account by e-mail.
pub async fn find_live_user_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        user_select!(),
        "WHERE u.email = $1 AND u.deleted_at IS NULL"
    ))
    .bind(email)
    .fetch_optional(conn)
    .await
}

/// A live account by external identity.
pub async fn find_live_user_by_identity(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        user_select!(),
        "WHERE u.issuer = $1 AND u.subject = $2 AND u.deleted_at IS NULL"
    ))
    .bind(issuer)
    .bind(subject)
    .fetch_optional(conn)
    .await
}

/// An account by id; deleted ones only with `include_deleted`.
pub async fn find_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    include_deleted: bool,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        user_select!(),
        "WHERE u.user_id = $1 AND ($2 OR u.deleted_at IS NULL)"
    ))
    .bind(user_id)
    .bind(include_deleted)
    .fetch_optional(conn)
    .await
}

/// Records a successful login or refresh.
pub async fn touch_last_login(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Updates the given profile fields of a live account; `false` when it does not exist.
pub async fn update_profile(
    conn: &mut PgConnection,
    user_id: Uuid,
    display_name: Option<&str>,
    description: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE users SET display_name = COALESCE($2, display_name), \
         description = COALESCE($3, description), updated_at = now() \
         WHERE user_id = $1 AND deleted_at IS NULL",
    )
    .bind(user_id)
    .bind(display_name)
    .bind(description)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Soft-deletes a live account; its deletion time, or `None` when it was not live.
pub async fn soft_delete(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE users SET deleted_at = now(), updated_at = now() \
         WHERE user_id = $1 AND deleted_at IS NULL RETURNING deleted_at",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// Adds a role to a live account (no change when held); `false` when it does not exist.
pub async fn add_role(
    conn: &mut PgConnection,
    user_id: Uuid,
    role: &str,
) -> Result<bool, sqlx::Error> {
    // One statement, so concurrent grants of different roles never lose each other.
    let updated = sqlx::query(
        "UPDATE users SET roles = ARRAY(SELECT DISTINCT r FROM unnest(array_append(roles, $2)) r          ORDER BY r), updated_at = now() WHERE user_id = $1 AND deleted_at IS NULL",
    )
    .bind(user_id)
    .bind(role)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Removes a role from a live account (no change when not held); `false` when it does not exist.
pub async fn remove_role(
    conn: &mut PgConnection,
    user_id: Uuid,
    role: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE users SET roles = array_remove(roles, $2), updated_at = now() \
         WHERE user_id = $1 AND deleted_at IS NULL",
    )
    .bind(user_id)
    .bind(role)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A page of accounts, newest first, after the keyset cursor `after`.
pub async fn list_users(
    conn: &mut PgConnection,
    query: Option<&str>,
    role: Option<&str>,
    show_deleted: bool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let (after_time, after_id) = after.unzip();
    sqlx::query_as(concat!(
        user_select!(),
        "WHERE ($1::text IS NULL OR u.email ILIKE '%' || $1 || '%' \
                OR u.display_name ILIKE '%' || $1 || '%') \
           AND ($2::text IS NULL OR $2 = ANY (u.roles)) \
           AND ($3 OR u.deleted_at IS NULL) \
           AND ($4::timestamptz IS NULL OR (u.created_at, u.user_id) < ($4, $5)) \
         ORDER BY u.created_at DESC, u.user_id DESC LIMIT $6"
    ))
    .bind(query)
    .bind(role)
    .bind(show_deleted)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A saved address with its change time.
pub async fn find_address(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<(PostalAddress, DateTime<Utc>)>, sqlx::Error> {
    let row: Option<AddressRow> = sqlx::query_as(
        "SELECT recipient_name, recipient_name_kana, country_code, postal_code, region, \
         locality, address_line1, address_line2, phone_number, updated_at \
         FROM shipping_addresses WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(AddressRow::split))
}

#[derive(sqlx::FromRow)]
struct AddressRow {
    recipient_name: String,
    recipient_name_kana: String,
    country_code: String,
    postal_code: String,
    region: String,
    locality: String,
    address_line1: String,
    address_line2: String,
    phone_number: String,
    updated_at: DateTime<Utc>,
}

impl AddressRow {
    fn split(self) -> (PostalAddress, DateTime<Utc>) {
        (
            PostalAddress {
                recipient_name: self.recipient_name,
                recipient_name_kana: self.recipient_name_kana,
                country_code: self.country_code,
                postal_code: self.postal_code,
                region: self.region,
                locality: self.locality,
                address_line1: self.address_line1,
                address_line2: self.address_line2,
                phone_number: self.phone_number,
            },
            self.updated_at,
        )
    }
}

/// Creates or replaces the saved address; returns its change time.
pub async fn upsert_address(
    conn: &mut PgConnection,
    user_id: Uuid,
    address: &PostalAddress,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO shipping_addresses (user_id, recipient_name, recipient_name_kana, \
         country_code, postal_code, region, locality, address_line1, address_line2, phone_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (user_id) DO UPDATE SET recipient_name = EXCLUDED.recipient_name, \
         recipient_name_kana = EXCLUDED.recipient_name_kana, \
         country_code = EXCLUDED.country_code, postal_code = EXCLUDED.postal_code, \
         region = EXCLUDED.region, locality = EXCLUDED.locality, \
         address_line1 = EXCLUDED.address_line1, address_line2 = EXCLUDED.address_line2, \
         phone_number = EXCLUDED.phone_number, updated_at = now() \
         RETURNING updated_at",
    )
    .bind(user_id)
    .bind(&address.recipient_name)
    .bind(&address.recipient_name_kana)
    .bind(&address.country_code)
    .bind(&address.postal_code)
    .bind(&address.region)
    .bind(&address.locality)
    .bind(&address.address_line1)
    .bind(&address.address_line2)
    .bind(&address.phone_number)
    .fetch_one(conn)
    .await
}

/// Starts a token family for `user_id`.
pub async fn insert_family(
    conn: &mut PgConnection,
    family_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_token_families (family_id, user_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(family_id)
    .bind(user_id)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores the hash of a new refresh token of `family_id`.
pub async fn insert_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    family_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, family_id) VALUES ($1, $2)")
        .bind(token_hash)
        .bind(family_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A presented refresh token with its family.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// The family.
    pub family_id: Uuid,
    /// The account.
    pub user_id: Uuid,
    /// When the token was rotated (already used).
    pub used_at: Option<DateTime<Utc>>,
    /// When the family expires.
    pub expires_at: DateTime<Utc>,
    /// When the family was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Finds a token by hash and locks it and its family, so concurrent uses of one token are
/// serialised: the second sees it used and is treated as reuse.
pub async fn lock_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.family_id, f.user_id, t.used_at, f.expires_at, f.revoked_at \
         FROM refresh_tokens t JOIN refresh_token_families f USING (family_id) \
         WHERE t.token_hash = $1 FOR UPDATE OF t, f",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// Marks a token rotated.
pub async fn mark_used(conn: &mut PgConnection, token_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(token_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes one family; the number of families this call revoked (0 or 1).
pub async fn revoke_family(conn: &mut PgConnection, family_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_token_families SET revoked_at = now() \
         WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every live family of an account; the number revoked.
pub async fn revoke_user_families(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_token_families SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Serialises key generation across replicas for the rest of the transaction.
pub async fn lock_signing_keys(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mercato.user.signing_keys'))")
        .execute(conn)
        .await?;
    Ok(())
}

/// Every stored key (there are a handful).
pub async fn signing_keys(conn: &mut PgConnection) -> Result<Vec<StoredKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, algorithm, private_key_pem, public_jwk, created_at, activate_at, revoked_at \
         FROM signing_keys ORDER BY created_at DESC",
    )
    .fetch_all(conn)
    .await
}

/// Stores a key that starts signing at `activate_at`; `private_key` is the PEM or its sealed
/// form (see `key_encryption`). `ON CONFLICT` keeps an imported PEM from being stored twice.
pub async fn insert_signing_key(
    conn: &mut PgConnection,
    material: &KeyMaterial,
    private_key: &str,
    activate_at: DateTime<Utc>,
    idempotency: Option<(&str, &str)>,
) -> Result<(), sqlx::Error> {
    let (key, hash) = idempotency.unzip();
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key_pem, public_jwk, activate_at, \
         idempotency_key, request_hash) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (kid) DO NOTHING",
    )
    .bind(&material.kid)
    .bind(material.algorithm.as_str())
    .bind(private_key)
    .bind(&material.public_jwk)
    .bind(activate_at)
    .bind(key)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces a key's stored private key (encrypting a plaintext key at start-up).
pub async fn set_private_key(
    conn: &mut PgConnection,
    kid: &str,
    private_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE signing_keys SET private_key_pem = $2 WHERE kid = $1")
        .bind(kid)
        .bind(private_key)
        .execute(conn)
        .await?;
    Ok(())
}

/// The key created by a RotateSigningKey call with this idempotency key, with its request hash.
pub async fn find_key_by_idempotency(
    conn: &mut PgConnection,
    idempotency_key: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT kid, request_hash FROM signing_keys WHERE idempotency_key = $1")
        .bind(idempotency_key)
        .fetch_optional(conn)
        .await
}

/// Revokes a key now.
pub async fn revoke_signing_key(conn: &mut PgConnection, kid: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE signing_keys SET revoked_at = now() WHERE kid = $1 AND revoked_at IS NULL")
        .bind(kid)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves a key's activation to `at` (promoting a NEXT key at once).
pub async fn activate_at(
    conn: &mut PgConnection,
    kid: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE signing_keys SET activate_at = $2 WHERE kid = $1")
        .bind(kid)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}
