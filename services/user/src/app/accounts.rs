//! Account use cases: the caller's own profile and shipping address, provisioning of accounts
//! for external identity providers, and the admin operations (lookup, listing, roles).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use mercato_platform::principal::Role;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{UserApp, UserFilter, UserPage, hex, user_not_found};
use crate::domain::{Email, PostalAddress, Violation};
use crate::error::UserError;
use crate::events;
use crate::store::{self, NewUser, UserRow};

impl UserApp {
    // ----- own profile

    /// The caller's live account.
    pub async fn current_user(&self, user_id: Uuid) -> Result<UserRow, UserError> {
        let mut conn = self.inner.pool.acquire().await?;
        store::find_user(&mut conn, user_id, false)
            .await?
            .ok_or_else(|| user_not_found(user_id))
    }

    /// Updates display name and/or description.
    pub async fn update_current_user(
        &self,
        user_id: Uuid,
        display_name: Option<String>,
        description: Option<String>,
    ) -> Result<UserRow, UserError> {
        let mut tx = self.inner.pool.begin().await?;
        if !store::update_profile(
            &mut tx,
            user_id,
            display_name.as_deref(),
            description.as_deref(),
        )
        .await?
        {
            return Err(user_not_found(user_id));
        }
        let user = store::find_user(&mut tx, user_id, false)
            .await?
            .ok_or_else(|| user_not_found(user_id))?;
        tx.commit().await?;
        Ok(user)
    }

    /// Soft-deletes the caller's account, revokes its sessions and publishes `user.deleted`.
    pub async fn delete_current_user(&self, user_id: Uuid) -> Result<DateTime<Utc>, UserError> {
        let mut tx = self.inner.pool.begin().await?;
        let Some(deleted_at) = store::soft_delete(&mut tx, user_id).await? else {
            return Err(user_not_found(user_id));
        };
        store::revoke_user_families(&mut tx, user_id).await?;
        events::user_deleted(&mut tx, user_id, deleted_at).await?;
        tx.commit().await?;
        tracing::info!(user.id = %user_id, "account deleted");
        Ok(deleted_at)
    }

    /// The caller's saved address.
    pub async fn shipping_address(
        &self,
        user_id: Uuid,
    ) -> Result<(PostalAddress, DateTime<Utc>), UserError> {
        let mut conn = self.inner.pool.acquire().await?;
        if store::find_user(&mut conn, user_id, false).await?.is_none() {
            return Err(user_not_found(user_id));
        }
        store::find_address(&mut conn, user_id)
            .await?
            .ok_or_else(|| UserError::NotFound {
                resource_type: "shipping_address",
                resource_id: user_id.to_string(),
            })
    }

    /// Saves the caller's address: `fields` names what to take from `input` (`None` = all); a
    /// first save always takes the whole address.
    pub async fn update_shipping_address(
        &self,
        user_id: Uuid,
        input: PostalAddress,
        fields: Option<Vec<String>>,
    ) -> Result<(PostalAddress, DateTime<Utc>), UserError> {
        let mut tx = self.inner.pool.begin().await?;
        if store::find_user(&mut tx, user_id, false).await?.is_none() {
            return Err(user_not_found(user_id));
        }
        let merged = match (store::find_address(&mut tx, user_id).await?, fields) {
            (Some((mut saved, _)), Some(fields)) => {
                for field in fields {
                    let target = match field.as_str() {
                        "recipient_name" => &mut saved.recipient_name,
                        "recipient_name_kana" => &mut saved.recipient_name_kana,
                        "country_code" => &mut saved.country_code,
                        "postal_code" => &mut saved.postal_code,
                        "region" => &mut saved.region,
                        "locality" => &mut saved.locality,
                        "address_line1" => &mut saved.address_line1,
                        "address_line2" => &mut saved.address_line2,
                        "phone_number" => &mut saved.phone_number,
                        other => {
                            return Err(UserError::field(
                                "update_mask",
                                format!("unknown field {other}"),
                            ));
                        }
                    };
                    let value = address_field(&input, &field);
                    *target = value;
                }
                saved
            }
            (Some(_) | None, _) => input,
        };
        let address = crate::domain::parse_address(&merged, "shipping_address")
            .map_err(UserError::Validation)?;
        let updated_at = store::upsert_address(&mut tx, user_id, &address).await?;
        tx.commit().await?;
        Ok((address, updated_at))
    }

    // ----- external identity providers

    /// Returns (creating on first use) the account of an external subject; `true` when created.
    pub async fn provision_external_user(
        &self,
        issuer: &str,
        subject: &str,
        email: &str,
        email_verified: bool,
        display_name: &str,
    ) -> Result<(UserRow, bool), UserError> {
        let mut violations = Vec::new();
        if !self.inner.auth.external_issuers.iter().any(|i| i == issuer) {
            violations.push(Violation::new(
                "issuer",
                "is not a configured external issuer",
            ));
        }
        let subject_chars = subject.chars().count();
        if subject_chars == 0 || subject_chars > crate::domain::MAX_SUBJECT_CHARS {
            violations.push(Violation::new("subject", "must be 1-255 characters"));
        }
        if !violations.is_empty() {
            return Err(UserError::Validation(violations));
        }
        if !email_verified || email.trim().is_empty() {
            return Err(UserError::EmailNotVerified);
        }
        let email = Email::parse(email).map_err(|d| UserError::field("email", d))?;
        let mut conn = self.inner.pool.acquire().await?;
        if let Some(user) = store::find_live_user_by_identity(&mut conn, issuer, subject).await? {
            return Ok((user, false));
        }
        drop(conn);
        let name = match crate::domain::truncate(
            crate::domain::nfc(display_name).trim(),
            crate::domain::MAX_DISPLAY_NAME_CHARS,
        ) {
            name if name.is_empty() => email.local_part().to_owned(),
            name => name,
        };
        let mut tx = self.inner.pool.begin().await?;
        let new = NewUser {
            email: email.as_str(),
            email_verified: true,
            password_hash: None,
            display_name: &name,
            issuer,
            subject: Some(subject),
        };
        match store::insert_user(&mut tx, &new).await {
            Ok(user) => {
                events::user_registered(&mut tx, &user, true).await?;
                tx.commit().await?;
                tracing::info!(user.id = %user.user_id, "external account provisioned");
                Ok((user, true))
            }
            Err(err)
                if mercato_platform::db::is_unique_violation(&err, store::IDENTITY_KEY)
                    || mercato_platform::db::is_unique_violation(&err, store::EMAIL_KEY) =>
            {
                // A concurrent call created the account first (its identity row, or its e-mail
                // row if PostgreSQL checked that index first): the account is theirs to return.
                drop(tx);
                let mut conn = self.inner.pool.acquire().await?;
                match store::find_live_user_by_identity(&mut conn, issuer, subject).await? {
                    Some(user) => Ok((user, false)),
                    None => Err(UserError::EmailTaken),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    // ----- admin

    /// Any account by id.
    pub async fn user(&self, user_id: Uuid, show_deleted: bool) -> Result<UserRow, UserError> {
        let mut conn = self.inner.pool.acquire().await?;
        store::find_user(&mut conn, user_id, show_deleted)
            .await?
            .ok_or_else(|| user_not_found(user_id))
    }

    /// A page of accounts matching `filter`.
    pub async fn list_users(
        &self,
        filter: &UserFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<UserPage, UserError> {
        let fingerprint = hex(&Sha256::digest(
            format!(
                "{:?}|{:?}|{}",
                filter.query, filter.role, filter.show_deleted
            )
            .as_bytes(),
        ))[..16]
            .to_owned();
        let after = decode_cursor(page_token, &fingerprint)?;
        let mut conn = self.inner.pool.acquire().await?;
        let limit = i64::try_from(page_size).unwrap_or(100) + 1;
        let mut users = store::list_users(
            &mut conn,
            filter.query.as_deref(),
            filter.role.map(Role::as_str),
            filter.show_deleted,
            after,
            limit,
        )
        .await?;
        let next_page_token = if users.len() > page_size {
            users.truncate(page_size);
            users
                .last()
                .map(|last| encode_cursor(last.created_at, last.user_id, &fingerprint))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(UserPage {
            users,
            next_page_token,
        })
    }

    /// Adds `role` to `user_id`.
    pub async fn grant_role(&self, user_id: Uuid, role: Role) -> Result<UserRow, UserError> {
        let mut tx = self.inner.pool.begin().await?;
        if !store::add_role(&mut tx, user_id, role.as_str()).await? {
            return Err(user_not_found(user_id));
        }
        let user = store::find_user(&mut tx, user_id, false)
            .await?
            .ok_or_else(|| user_not_found(user_id))?;
        tx.commit().await?;
        Ok(user)
    }

    /// Removes `role` from `user_id`; `actor` is the admin doing it.
    pub async fn revoke_role(
        &self,
        actor: Uuid,
        user_id: Uuid,
        role: Role,
    ) -> Result<UserRow, UserError> {
        match role {
            Role::Buyer => {
                return Err(UserError::field("role", "the buyer role cannot be revoked"));
            }
            Role::Admin if actor == user_id => {
                return Err(UserError::field(
                    "role",
                    "an admin cannot revoke their own admin role",
                ));
            }
            Role::Admin | Role::Seller => {}
        }
        let mut tx = self.inner.pool.begin().await?;
        if !store::remove_role(&mut tx, user_id, role.as_str()).await? {
            return Err(user_not_found(user_id));
        }
        let user = store::find_user(&mut tx, user_id, false)
            .await?
            .ok_or_else(|| user_not_found(user_id))?;
        tx.commit().await?;
        Ok(user)
    }
}

fn address_field(address: &PostalAddress, field: &str) -> String {
    match field {
        "recipient_name" => address.recipient_name.clone(),
        "recipient_name_kana" => address.recipient_name_kana.clone(),
        "country_code" => address.country_code.clone(),
        "postal_code" => address.postal_code.clone(),
        "region" => address.region.clone(),
        "locality" => address.locality.clone(),
        "address_line1" => address.address_line1.clone(),
        "address_line2" => address.address_line2.clone(),
        "phone_number" => address.phone_number.clone(),
        _ => String::new(),
    }
}

fn encode_cursor(created_at: DateTime<Utc>, user_id: Uuid, fingerprint: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}|{fingerprint}",
        created_at.timestamp_micros(),
        user_id
    ))
}

fn decode_cursor(
    token: &str,
    fingerprint: &str,
) -> Result<Option<(DateTime<Utc>, Uuid)>, UserError> {
    if token.is_empty() {
        return Ok(None);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(UserError::InvalidPageToken)?;
    let mut parts = raw.split('|');
    let (Some(micros), Some(id), Some(bound), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(UserError::InvalidPageToken);
    };
    if bound != fingerprint {
        return Err(UserError::InvalidPageToken);
    }
    let created_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or(UserError::InvalidPageToken)?;
    let user_id = Uuid::parse_str(id).map_err(|_| UserError::InvalidPageToken)?;
    Ok(Some((created_at, user_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_filters() {
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("time");
        let id = Uuid::now_v7();
        let token = encode_cursor(now, id, "abc");
        assert_eq!(
            decode_cursor(&token, "abc").expect("valid"),
            Some((now, id))
        );
        assert!(matches!(
            decode_cursor(&token, "other"),
            Err(UserError::InvalidPageToken)
        ));
        assert!(matches!(
            decode_cursor("%%%", "abc"),
            Err(UserError::InvalidPageToken)
        ));
    }
}
