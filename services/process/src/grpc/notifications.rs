//! `NotificationService`: admins list notifications and queue a FAILED one again.

use mercato_platform::principal::{self, Role};
use mercato_proto::mercato::process::v1 as pb;
use pb::notification_service_server::NotificationService;
use pb::{NotificationChannel, NotificationStatus as PbStatus};
use tonic::{Request, Response, Status};

use crate::context::ProcessContext;
use crate::domain::{NotificationStatus, mask_recipient};
use crate::error::{ProcessError, Violation};
use crate::grpc::{optional_uuid, uuid_field};
use crate::notifications::events::{kind_from_proto, kind_to_proto, timestamp};
use crate::notifications::store::{self, ListFilter, NotificationRow};
use crate::paging::{PageToken, page_limit};
use crate::wake;

type GrpcResult<T> = Result<Response<T>, Status>;

/// The `NotificationService` implementation.
#[derive(Debug, Clone)]
pub struct NotificationGrpc {
    context: ProcessContext,
}

impl NotificationGrpc {
    /// The service over `context`.
    pub fn new(context: ProcessContext) -> Self {
        Self { context }
    }
}

fn status_to_proto(status: NotificationStatus) -> PbStatus {
    match status {
        NotificationStatus::Pending => PbStatus::Pending,
        NotificationStatus::Sent => PbStatus::Sent,
        NotificationStatus::Failed => PbStatus::Failed,
    }
}

fn status_from_proto(raw: i32) -> Option<NotificationStatus> {
    match PbStatus::try_from(raw).ok()? {
        PbStatus::Unspecified => None,
        PbStatus::Pending => Some(NotificationStatus::Pending),
        PbStatus::Sent => Some(NotificationStatus::Sent),
        PbStatus::Failed => Some(NotificationStatus::Failed),
    }
}

/// The wire form of a notification (the recipient masked).
pub fn to_proto(row: &NotificationRow) -> Result<pb::Notification, ProcessError> {
    let channel = match row.channel.as_str() {
        "LOG" => NotificationChannel::Log,
        "EMAIL" => NotificationChannel::Email,
        other => {
            return Err(ProcessError::Corrupt(format!(
                "notification channel {other:?}"
            )));
        }
    };
    Ok(pb::Notification {
        notification_id: row.notification_id.to_string(),
        user_id: row.user_id.to_string(),
        kind: kind_to_proto(row.kind()?).into(),
        channel: channel.into(),
        recipient: mask_recipient(&row.recipient),
        subject: row.subject.clone(),
        parameters: row
            .parameters
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        status: status_to_proto(row.status()?).into(),
        attempt_count: row.attempt_count,
        last_error: row.last_error.clone().unwrap_or_default(),
        dedupe_key: row.dedupe_key.clone(),
        order_id: row.order_id.map(|id| id.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(row.create_time)),
        send_time: row.send_time.map(timestamp),
    })
}

#[tonic::async_trait]
impl NotificationService for NotificationGrpc {
    #[tracing::instrument(name = "process.list_notifications", skip_all)]
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> GrpcResult<pb::ListNotificationsResponse> {
        principal::require_role(&request, Role::Admin)?;
        let r = request.get_ref();
        let mut violations = Vec::new();
        if r.page_size < 0 {
            violations.push(Violation::new("page_size", "must not be negative"));
        }
        let user_id = optional_uuid(&r.user_id, "user_id", &mut violations);
        let order_id = optional_uuid(&r.order_id, "order_id", &mut violations);
        let mut kinds = Vec::new();
        for (i, raw) in r.kinds.iter().enumerate() {
            match kind_from_proto(*raw) {
                Some(kind) => kinds.push(kind),
                None => violations.push(Violation::new(
                    format!("kinds[{i}]"),
                    "must be a notification kind other than UNSPECIFIED",
                )),
            }
        }
        let mut statuses = Vec::new();
        for (i, raw) in r.statuses.iter().enumerate() {
            match status_from_proto(*raw) {
                Some(status) => statuses.push(status),
                None => violations.push(Violation::new(
                    format!("statuses[{i}]"),
                    "must be a notification status other than UNSPECIFIED",
                )),
            }
        }
        if !violations.is_empty() {
            return Err(ProcessError::Validation(violations).into());
        }
        let limit = page_limit(r.page_size)?;
        let filter = ListFilter {
            user_id,
            order_id,
            kinds,
            statuses,
        };
        let hash = filter.hash();
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(PageToken::decode(&r.page_token, &hash)?)
        };
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(ProcessError::from)?;
        let (rows, more) = store::list(&mut conn, &filter, after.as_ref(), limit).await?;
        let next_page_token = match rows.last() {
            Some(last) if more => PageToken {
                create_micros: last.create_time.timestamp_micros(),
                id: last.notification_id,
                filter: hash,
            }
            .encode(),
            _ => String::new(),
        };
        let notifications = rows.iter().map(to_proto).collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "process.retry_notification", skip_all, fields(notification.id))]
    async fn retry_notification(
        &self,
        request: Request<pb::RetryNotificationRequest>,
    ) -> GrpcResult<pb::RetryNotificationResponse> {
        principal::require_role(&request, Role::Admin)?;
        let id = uuid_field(&request.get_ref().notification_id, "notification_id")?;
        tracing::Span::current().record("notification.id", id.to_string());
        let mut tx = self
            .context
            .pool
            .begin()
            .await
            .map_err(ProcessError::from)?;
        let row = store::get_for_update(&mut tx, id)
            .await?
            .ok_or_else(|| ProcessError::notification_not_found(id))?;
        let row = match row.status()? {
            NotificationStatus::Pending => row,
            NotificationStatus::Sent => {
                return Err(ProcessError::IllegalState {
                    resource_type: "notification",
                    current: NotificationStatus::Sent.as_str(),
                    why: "the notification was already sent".to_owned(),
                }
                .into());
            }
            NotificationStatus::Failed => {
                let row = store::requeue(&mut tx, id, self.context.clock.now()).await?;
                wake::notify(&mut tx, store::CHANNEL)
                    .await
                    .map_err(ProcessError::from)?;
                row
            }
        };
        tx.commit().await.map_err(ProcessError::from)?;
        Ok(Response::new(pb::RetryNotificationResponse {
            notification: Some(to_proto(&row)?),
        }))
    }
}
