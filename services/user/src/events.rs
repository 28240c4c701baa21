//! Events the user service publishes (`user.registered`, `user.deleted`), written to the outbox
//! in the transaction that makes the change; the relay in `lib.rs` publishes them.

use chrono::{DateTime, Utc};
use mercato_messaging::envelope::new_envelope;
use mercato_messaging::outbox;
use mercato_proto::mercato::events::v1::{UserDeleted, UserRegistered};
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::settings::SERVICE;
use crate::store::UserRow;

/// Routing key of a new account.
pub const USER_REGISTERED: &str = "user.registered";
/// Routing key of a soft-deleted account.
pub const USER_DELETED: &str = "user.deleted";

fn any(type_name: &str, value: Vec<u8>) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/mercato.events.v1.{type_name}"),
        value,
    }
}

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Enqueues `user.registered` for `user`.
pub async fn user_registered(
    conn: &mut PgConnection,
    user: &UserRow,
    external: bool,
) -> Result<(), mercato_messaging::Error> {
    let payload = UserRegistered {
        user_id: user.user_id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        issuer: user.issuer.clone(),
        external,
        register_time: Some(timestamp(user.created_at)),
    };
    let envelope = new_envelope(
        USER_REGISTERED,
        "user",
        user.user_id.to_string(),
        1,
        SERVICE,
        Some(any("UserRegistered", payload.encode_to_vec())),
    );
    outbox::enqueue(conn, &envelope).await
}

/// Enqueues `user.deleted`.
pub async fn user_deleted(
    conn: &mut PgConnection,
    user_id: Uuid,
    deleted_at: DateTime<Utc>,
) -> Result<(), mercato_messaging::Error> {
    let payload = UserDeleted {
        user_id: user_id.to_string(),
        delete_time: Some(timestamp(deleted_at)),
    };
    let envelope = new_envelope(
        USER_DELETED,
        "user",
        user_id.to_string(),
        2,
        SERVICE,
        Some(any("UserDeleted", payload.encode_to_vec())),
    );
    outbox::enqueue(conn, &envelope).await
}
