//! `PaymentService`: the payer's own payments (someone else's look NOT_FOUND, whatever roles the
//! caller holds), admin lookups and searches, operator refunds and on-demand reconciliation.

use std::time::Duration;

use mercato_platform::principal::{self, Role};
use mercato_proto::mercato::common::v1::{Money, PaymentMethod, PaymentStatus, RefundStatus};
use mercato_proto::mercato::payment::v1 as pb;
use pb::payment_service_server::PaymentService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::domain::{self, Method};
use crate::error::{PaymentError, Violation};
use crate::grpc::{page_limit, request_hash, uuid_field};
use crate::payments::events::timestamp;
use crate::payments::reconcile;
use crate::payments::refund::{self, RefundCommand};
use crate::payments::store::{self, ListFilter, PageToken, PaymentRow, RefundRow};

type GrpcResult<T> = Result<Response<T>, Status>;

/// The most a reconciliation run may examine.
const MAX_RECONCILE_LIMIT: i32 = 1_000;
/// The oldest `older_than` accepted.
const MAX_OLDER_THAN: Duration = Duration::from_secs(30 * 24 * 3_600);

/// The `PaymentService` implementation.
#[derive(Debug, Clone)]
pub struct PaymentGrpc {
    context: PaymentContext,
}

impl PaymentGrpc {
    /// The service over `context`.
    pub fn new(context: PaymentContext) -> Self {
        Self { context }
    }

    async fn load(&self, id: Uuid) -> Result<(PaymentRow, Vec<RefundRow>), PaymentError> {
        let mut conn = self.context.pool.acquire().await?;
        let payment = store::get(&mut conn, id)
            .await?
            .ok_or_else(|| PaymentError::payment_not_found(id))?;
        let refunds = store::refunds_of(&mut conn, id).await?;
        Ok((payment, refunds))
    }

    async fn list(
        &self,
        filter: ListFilter,
        page_size: i32,
        page_token: &str,
        with_secret: bool,
    ) -> Result<(Vec<pb::Payment>, String), PaymentError> {
        let limit = page_limit(page_size)?;
        let hash = filter.hash();
        let after = if page_token.is_empty() {
            None
        } else {
            Some(PageToken::decode(page_token, &hash)?)
        };
        let mut conn = self.context.pool.acquire().await?;
        let (rows, more) = store::list(&mut conn, &filter, after.as_ref(), limit).await?;
        let next = match rows.last() {
            Some(last) if more => PageToken {
                create_micros: last.create_time.timestamp_micros(),
                id: last.payment_id,
                filter: hash,
            }
            .encode(),
            _ => String::new(),
        };
        let mut payments = Vec::with_capacity(rows.len());
        for row in &rows {
            let refunds = store::refunds_of(&mut conn, row.payment_id).await?;
            payments.push(to_proto(row, &refunds, with_secret)?);
        }
        Ok((payments, next))
    }
}

fn money(currency: &str, amount: i64) -> Option<Money> {
    Some(Money {
        currency_code: currency.to_owned(),
        amount_minor: amount,
    })
}

fn refund_status(raw: &str) -> RefundStatus {
    match raw {
        "PENDING" => RefundStatus::Pending,
        "SUCCEEDED" => RefundStatus::Succeeded,
        "FAILED" => RefundStatus::Failed,
        _ => RefundStatus::Unspecified,
    }
}

fn refund_to_proto(payment: &PaymentRow, refund: &RefundRow) -> pb::Refund {
    pb::Refund {
        refund_id: refund.refund_id.to_string(),
        payment_id: refund.payment_id.to_string(),
        order_id: payment.order_id.to_string(),
        amount: money(&payment.currency, refund.amount),
        status: refund_status(&refund.status).into(),
        reason: refund.reason.clone(),
        provider_refund_id: refund.provider_refund_id.clone().unwrap_or_default(),
        failure_message: refund.failure_message.clone().unwrap_or_default(),
        create_time: Some(timestamp(refund.create_time)),
        settle_time: refund.settle_time.map(timestamp),
    }
}

/// The wire form of a payment; the client secret only for the payer's own reads.
pub fn to_proto(
    payment: &PaymentRow,
    refunds: &[RefundRow],
    with_secret: bool,
) -> Result<pb::Payment, PaymentError> {
    Ok(pb::Payment {
        payment_id: payment.payment_id.to_string(),
        order_id: payment.order_id.to_string(),
        user_id: payment.user_id.to_string(),
        method: payment.method()?.to_proto().into(),
        status: payment.status()?.to_proto().into(),
        amount: money(&payment.currency, payment.amount),
        refunded_amount: money(&payment.currency, payment.refunded_amount),
        payment_url: payment.payment_url.clone().unwrap_or_default(),
        client_secret: if with_secret {
            payment.client_secret.clone().unwrap_or_default()
        } else {
            String::new()
        },
        provider_payment_id: payment.provider_payment_id.clone().unwrap_or_default(),
        failure_code: payment.failure_code.clone().unwrap_or_default(),
        failure_message: payment.failure_message.clone().unwrap_or_default(),
        refunds: refunds
            .iter()
            .map(|r| refund_to_proto(payment, r))
            .collect(),
        version: payment.version,
        create_time: Some(timestamp(payment.create_time)),
        update_time: Some(timestamp(payment.update_time)),
        settle_time: payment.settle_time.map(timestamp),
    })
}

fn statuses(raw: &[i32], field: &str) -> Result<Vec<domain::Status>, PaymentError> {
    raw.iter()
        .map(|value| {
            PaymentStatus::try_from(*value)
                .ok()
                .and_then(domain::Status::from_proto)
                .ok_or_else(|| {
                    PaymentError::field(field, format!("{value} is not a payment status"))
                })
        })
        .collect()
}

fn optional_uuid(raw: &str, field: &str) -> Result<Option<Uuid>, PaymentError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        uuid_field(raw, field).map(Some)
    }
}

fn require_admin_or_internal<T>(request: &Request<T>) -> Result<Option<String>, Status> {
    if principal::is_internal_service(request) {
        let caller = principal::caller(request).map(|c| c.0.clone());
        return Ok(caller.map(|c| format!("service:{c}")));
    }
    let principal = principal::require_role(request, Role::Admin)?;
    Ok(Some(format!("user:{}", principal.user_id)))
}

#[tonic::async_trait]
impl PaymentService for PaymentGrpc {
    #[tracing::instrument(name = "payment.get_payment", skip_all, fields(payment.id))]
    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> GrpcResult<pb::GetPaymentResponse> {
        let user = principal::require_user(&request)?.user_id;
        let id = uuid_field(&request.get_ref().payment_id, "payment_id")?;
        tracing::Span::current().record("payment.id", tracing::field::display(id));
        let (payment, refunds) = self.load(id).await?;
        if payment.user_id != user {
            return Err(PaymentError::payment_not_found(id).into());
        }
        Ok(Response::new(pb::GetPaymentResponse {
            payment: Some(to_proto(&payment, &refunds, true)?),
        }))
    }

    #[tracing::instrument(name = "payment.list_payments", skip_all)]
    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> GrpcResult<pb::ListPaymentsResponse> {
        let user = principal::require_user(&request)?.user_id;
        let r = request.get_ref();
        let filter = ListFilter {
            user_id: Some(user),
            order_id: optional_uuid(&r.order_id, "order_id")?,
            statuses: statuses(&r.statuses, "statuses")?,
            method: None,
        };
        let (payments, next_page_token) =
            self.list(filter, r.page_size, &r.page_token, true).await?;
        Ok(Response::new(pb::ListPaymentsResponse {
            payments,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "payment.lookup_payment", skip_all, fields(payment.id))]
    async fn lookup_payment(
        &self,
        request: Request<pb::LookupPaymentRequest>,
    ) -> GrpcResult<pb::LookupPaymentResponse> {
        require_admin_or_internal(&request)?;
        let id = uuid_field(&request.get_ref().payment_id, "payment_id")?;
        tracing::Span::current().record("payment.id", tracing::field::display(id));
        let (payment, refunds) = self.load(id).await?;
        Ok(Response::new(pb::LookupPaymentResponse {
            payment: Some(to_proto(&payment, &refunds, false)?),
        }))
    }

    #[tracing::instrument(name = "payment.search_payments", skip_all)]
    async fn search_payments(
        &self,
        request: Request<pb::SearchPaymentsRequest>,
    ) -> GrpcResult<pb::SearchPaymentsResponse> {
        principal::require_role(&request, Role::Admin)?;
        let r = request.get_ref();
        let method = match PaymentMethod::try_from(r.method) {
            Ok(PaymentMethod::Unspecified) => None,
            Ok(m) => Method::from_proto(m),
            Err(_) => {
                return Err(
                    PaymentError::field("method", format!("{} is not a method", r.method)).into(),
                );
            }
        };
        let filter = ListFilter {
            user_id: optional_uuid(&r.user_id, "user_id")?,
            order_id: optional_uuid(&r.order_id, "order_id")?,
            statuses: statuses(&r.statuses, "statuses")?,
            method,
        };
        let (payments, next_page_token) =
            self.list(filter, r.page_size, &r.page_token, false).await?;
        Ok(Response::new(pb::SearchPaymentsResponse {
            payments,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "payment.refund_payment", skip_all, fields(payment.id))]
    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> GrpcResult<pb::RefundPaymentResponse> {
        let caller = require_admin_or_internal(&request)?.unwrap_or_else(|| "service:".to_owned());
        let r = request.get_ref();
        let mut violations = Vec::new();
        let id = match uuid_field(&r.payment_id, "payment_id") {
            Ok(id) => Some(id),
            Err(PaymentError::Validation(v)) => {
                violations.extend(v);
                None
            }
            Err(other) => return Err(other.into()),
        };
        let reason_len = r.reason.chars().count();
        if !(1..=200).contains(&reason_len) {
            violations.push(Violation::new("reason", "must be 1-200 characters"));
        }
        if !domain::valid_idempotency_key(&r.idempotency_key) {
            violations.push(Violation::new(
                "idempotency_key",
                "must be 1-128 printable ascii characters",
            ));
        }
        let currency = &self.context.settings.payments.currency;
        let amount = match &r.amount {
            None => None,
            Some(m) if m.amount_minor <= 0 => {
                violations.push(Violation::new("amount.amount_minor", "must be more than 0"));
                None
            }
            Some(m) => Some(m.amount_minor),
        };
        if !violations.is_empty() {
            return Err(PaymentError::Validation(violations).into());
        }
        if let Some(m) = &r.amount
            && &m.currency_code != currency
        {
            return Err(PaymentError::CurrencyMismatch {
                field: "amount.currency_code",
                expected: currency.clone(),
            }
            .into());
        }
        let Some(id) = id else {
            return Err(PaymentError::field("payment_id", "is required").into());
        };
        tracing::Span::current().record("payment.id", tracing::field::display(id));
        {
            let mut conn = self
                .context
                .pool
                .acquire()
                .await
                .map_err(PaymentError::from)?;
            if store::get(&mut conn, id).await?.is_none() {
                return Err(PaymentError::payment_not_found(id).into());
            }
        }
        let command = RefundCommand {
            payment_id: id,
            amount,
            reason: r.reason.clone(),
            scope: format!("rpc:{caller}:{}", r.idempotency_key),
            request_hash: request_hash(&[
                id.to_string(),
                amount.map(|a| a.to_string()).unwrap_or_default(),
                r.reason.clone(),
            ]),
        };
        let (refund, payment) = refund::refund(&self.context, &command).await?;
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(PaymentError::from)?;
        let refunds = store::refunds_of(&mut conn, id).await?;
        Ok(Response::new(pb::RefundPaymentResponse {
            refund: Some(refund_to_proto(&payment, &refund)),
            payment: Some(to_proto(&payment, &refunds, false)?),
        }))
    }

    #[tracing::instrument(name = "payment.reconcile_payments", skip_all)]
    async fn reconcile_payments(
        &self,
        request: Request<pb::ReconcilePaymentsRequest>,
    ) -> GrpcResult<pb::ReconcilePaymentsResponse> {
        require_admin_or_internal(&request)?;
        let r = request.get_ref();
        let mut violations = Vec::new();
        let older_than = match &r.older_than {
            None => Some(self.context.settings.payments.reconcile_after),
            Some(d) if d.seconds < 0 || d.nanos < 0 => {
                violations.push(Violation::new("older_than", "must not be negative"));
                None
            }
            Some(d) => {
                let value = Duration::new(
                    u64::try_from(d.seconds).unwrap_or(u64::MAX),
                    u32::try_from(d.nanos).unwrap_or(0),
                );
                if value > MAX_OLDER_THAN {
                    violations.push(Violation::new("older_than", "must be at most 30 days"));
                }
                Some(value)
            }
        };
        let limit = match r.limit {
            n if n < 0 => {
                violations.push(Violation::new("limit", "must not be negative"));
                0
            }
            0 => 100,
            n if n > MAX_RECONCILE_LIMIT => {
                violations.push(Violation::new("limit", "must be at most 1000"));
                0
            }
            n => n,
        };
        if !violations.is_empty() {
            return Err(PaymentError::Validation(violations).into());
        }
        let report = reconcile::run_once(
            &self.context,
            older_than.unwrap_or_default(),
            i64::from(limit),
        )
        .await?;
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(pb::ReconcilePaymentsResponse {
            examined_count: count(report.examined),
            succeeded_count: count(report.succeeded),
            failed_count: count(report.failed),
            pending_count: count(report.pending),
        }))
    }
}
