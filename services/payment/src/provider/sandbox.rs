//! The built-in sandbox provider: intents and refunds kept in the service's own database
//! (`sandbox_intents`, `sandbox_refunds`), as a real provider would keep them on its side, so a
//! developer without a Stripe account can run the whole saga.
//!
//! The buyer pays on the sandbox page (`crate::http::sandbox`), whose Pay / Fail buttons settle
//! the intent here and then post a Stripe-format event, signed with the webhook secret, through
//! the same verification and settlement code as a real provider's webhook.
//!
//! Every write commits on its own (never inside a caller's transaction): the provider's state is
//! outside ours, and an idempotency key makes each create and refund happen once.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    CreateIntent, Intent, PaymentProvider, ProviderError, ProviderRefund, RefundRequest,
    RefundState,
};
use crate::domain::Observed;

/// The provider name stored with sandbox payments.
pub const NAME: &str = "sandbox";

/// What the sandbox's buttons do to an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// "Pay": the intent succeeds.
    Succeed,
    /// "Fail": the card is declined.
    Fail,
}

/// The failure code of a sandbox "Fail".
pub const DECLINE_CODE: &str = "card_declined";
/// Its message, safe to show the buyer.
pub const DECLINE_MESSAGE: &str = "the sandbox declined the payment";

/// The sandbox provider over the service's pool.
#[derive(Debug, Clone)]
pub struct SandboxProvider {
    pool: PgPool,
    public_url: String,
}

#[derive(Debug, sqlx::FromRow)]
struct IntentRow {
    intent_id: String,
    status: String,
    amount: i64,
    currency: String,
    failure_code: Option<String>,
    failure_message: Option<String>,
    order_id: Uuid,
    #[allow(
        dead_code,
        reason = "read for completeness; shown on the page via order_id"
    )]
    update_time: DateTime<Utc>,
}

fn unavailable(err: sqlx::Error) -> ProviderError {
    ProviderError::Unavailable(format!("sandbox store: {err}"))
}

impl SandboxProvider {
    /// The sandbox over `pool`; payment pages are linked under `public_url`.
    pub fn new(pool: PgPool, public_url: impl Into<String>) -> Self {
        Self {
            pool,
            public_url: public_url.into(),
        }
    }

    fn page_url(&self, intent_id: &str) -> String {
        format!("{}/sandbox/payments/{intent_id}", self.public_url)
    }

    fn to_intent(&self, row: IntentRow) -> Result<Intent, ProviderError> {
        let status = match row.status.as_str() {
            "requires_action" => Observed::RequiresAction,
            "processing" => Observed::Processing,
            "succeeded" => Observed::Succeeded,
            "canceled" => Observed::Cancelled,
            "failed" => Observed::Failed {
                code: row.failure_code.unwrap_or_else(|| DECLINE_CODE.to_owned()),
                message: row
                    .failure_message
                    .unwrap_or_else(|| DECLINE_MESSAGE.to_owned()),
            },
            other => {
                return Err(ProviderError::Rejected {
                    code: "corrupt_intent".to_owned(),
                    message: format!("sandbox intent has status {other:?}"),
                });
            }
        };
        Ok(Intent {
            payment_url: Some(self.page_url(&row.intent_id)),
            id: row.intent_id,
            status,
            amount: row.amount,
            currency: row.currency,
            client_secret: None,
        })
    }

    async fn fetch(&self, intent_id: &str) -> Result<IntentRow, ProviderError> {
        sqlx::query_as::<_, IntentRow>(
            "SELECT intent_id, status, amount, currency, failure_code, failure_message, \
                    order_id, update_time \
             FROM sandbox_intents WHERE intent_id = $1",
        )
        .bind(intent_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ProviderError::NotFound(format!("intent {intent_id}")))
    }

    /// The order an intent pays and its amount and currency (for the payment page).
    pub async fn describe(&self, intent_id: &str) -> Result<(Uuid, Intent), ProviderError> {
        let row = self.fetch(intent_id).await?;
        let order_id = row.order_id;
        Ok((order_id, self.to_intent(row)?))
    }

    /// Presses a button of the payment page: settles an intent that awaits the buyer. Refused
    /// (`Rejected` / `intent_unexpected_state`) once the intent is settled.
    pub async fn complete(
        &self,
        intent_id: &str,
        outcome: Outcome,
    ) -> Result<Intent, ProviderError> {
        let (status, code, message) = match outcome {
            Outcome::Succeed => ("succeeded", None, None),
            Outcome::Fail => ("failed", Some(DECLINE_CODE), Some(DECLINE_MESSAGE)),
        };
        let updated = sqlx::query(
            "UPDATE sandbox_intents SET status = $2, failure_code = $3, failure_message = $4, \
                    update_time = now() \
             WHERE intent_id = $1 AND status IN ('requires_action', 'processing')",
        )
        .bind(intent_id)
        .bind(status)
        .bind(code)
        .bind(message)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?
        .rows_affected();
        let row = self.fetch(intent_id).await?;
        if updated == 0 {
            return Err(ProviderError::Rejected {
                code: "intent_unexpected_state".to_owned(),
                message: format!("the intent is already {}", row.status),
            });
        }
        self.to_intent(row)
    }
}

impl PaymentProvider for SandboxProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create_intent<'a>(
        &'a self,
        request: &'a CreateIntent,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            let id = format!("sbx_{}", Uuid::now_v7().simple());
            // The key makes a repeated create return the first intent, as Stripe's does.
            sqlx::query(
                "INSERT INTO sandbox_intents \
                     (intent_id, idempotency_key, order_id, payment_id, amount, currency, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'requires_action') \
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&id)
            .bind(&request.idempotency_key)
            .bind(request.order_id)
            .bind(request.payment_id)
            .bind(request.amount)
            .bind(&request.currency)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            let intent_id: String = sqlx::query_scalar(
                "SELECT intent_id FROM sandbox_intents WHERE idempotency_key = $1",
            )
            .bind(&request.idempotency_key)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
            let row = self.fetch(&intent_id).await?;
            if row.amount != request.amount || row.currency != request.currency {
                return Err(ProviderError::Rejected {
                    code: "idempotency_error".to_owned(),
                    message: "the key was used with different parameters".to_owned(),
                });
            }
            self.to_intent(row)
        })
    }

    fn retrieve_intent<'a>(
        &'a self,
        intent_id: &'a str,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            let row = self.fetch(intent_id).await?;
            self.to_intent(row)
        })
    }

    fn cancel_intent<'a>(
        &'a self,
        intent_id: &'a str,
        _idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE sandbox_intents SET status = 'canceled', update_time = now() \
                 WHERE intent_id = $1 AND status IN ('requires_action', 'processing')",
            )
            .bind(intent_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            let row = self.fetch(intent_id).await?;
            self.to_intent(row)
        })
    }

    fn refund<'a>(
        &'a self,
        request: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            // The intent row lock orders concurrent refunds of one intent.
            let intent: Option<(String, i64)> = sqlx::query_as(
                "SELECT status, amount FROM sandbox_intents WHERE intent_id = $1 FOR UPDATE",
            )
            .bind(&request.intent_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            let Some((status, amount)) = intent else {
                return Err(ProviderError::NotFound(format!(
                    "intent {}",
                    request.intent_id
                )));
            };
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT refund_id FROM sandbox_refunds WHERE idempotency_key = $1",
            )
            .bind(&request.idempotency_key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            if let Some(id) = existing {
                return Ok(ProviderRefund {
                    id,
                    state: RefundState::Succeeded,
                });
            }
            if status != "succeeded" {
                return Err(ProviderError::Rejected {
                    code: "charge_not_refundable".to_owned(),
                    message: format!("the intent is {status}"),
                });
            }
            let refunded: i64 = sqlx::query_scalar(
                "SELECT COALESCE(SUM(amount), 0)::bigint FROM sandbox_refunds WHERE intent_id = $1",
            )
            .bind(&request.intent_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            if request.amount <= 0 || refunded + request.amount > amount {
                return Err(ProviderError::Rejected {
                    code: "amount_too_large".to_owned(),
                    message: format!("at most {} can still be refunded", amount - refunded),
                });
            }
            let id = format!("sbxre_{}", Uuid::now_v7().simple());
            sqlx::query(
                "INSERT INTO sandbox_refunds (refund_id, idempotency_key, intent_id, amount) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(&request.idempotency_key)
            .bind(&request.intent_id)
            .bind(request.amount)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(ProviderRefund {
                id,
                state: RefundState::Succeeded,
            })
        })
    }
}
