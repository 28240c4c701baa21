//! `WalletService`: the caller's points wallet (the forwarded principal's user; no request names
//! a user).

use mercato_platform::principal;
use mercato_proto::mercato::common::v1::{LedgerEntryKind, Money};
use mercato_proto::mercato::payment::v1 as pb;
use pb::wallet_service_server::WalletService;
use tonic::{Request, Response, Status};

use crate::context::PaymentContext;
use crate::domain;
use crate::error::{PaymentError, Violation};
use crate::grpc::{page_limit, request_hash};
use crate::payments::events::timestamp;
use crate::payments::store::PageToken;
use crate::settings::MAX_CHARGE;
use crate::wallet::{self, Charge, EntryRow, Kind, WalletRow};

type GrpcResult<T> = Result<Response<T>, Status>;

/// The `WalletService` implementation.
#[derive(Debug, Clone)]
pub struct WalletGrpc {
    context: PaymentContext,
}

impl WalletGrpc {
    /// The service over `context`.
    pub fn new(context: PaymentContext) -> Self {
        Self { context }
    }

    fn money(&self, amount: i64) -> Option<Money> {
        Some(Money {
            currency_code: self.context.settings.payments.currency.clone(),
            amount_minor: amount,
        })
    }

    fn wallet(&self, row: &WalletRow) -> pb::Wallet {
        pb::Wallet {
            balance: self.money(row.balance),
            version: row.version,
            update_time: row.update_time.map(timestamp),
        }
    }

    fn entry(&self, row: &EntryRow) -> pb::LedgerEntry {
        let kind = match Kind::parse(&row.kind) {
            Some(Kind::Charge) => LedgerEntryKind::Charge,
            Some(Kind::Spend) => LedgerEntryKind::Spend,
            Some(Kind::Refund) => LedgerEntryKind::Refund,
            None => LedgerEntryKind::Unspecified,
        };
        pb::LedgerEntry {
            entry_id: row.entry_id.to_string(),
            kind: kind.into(),
            amount: self.money(row.amount),
            balance_after: self.money(row.balance_after),
            order_id: row.order_id.map(|id| id.to_string()).unwrap_or_default(),
            payment_id: row.payment_id.map(|id| id.to_string()).unwrap_or_default(),
            create_time: Some(timestamp(row.create_time)),
        }
    }
}

#[tonic::async_trait]
impl WalletService for WalletGrpc {
    #[tracing::instrument(name = "payment.get_wallet", skip_all, fields(user.id))]
    async fn get_wallet(
        &self,
        request: Request<pb::GetWalletRequest>,
    ) -> GrpcResult<pb::GetWalletResponse> {
        let user = principal::require_user(&request)?.user_id;
        tracing::Span::current().record("user.id", tracing::field::display(user));
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(PaymentError::from)?;
        let row = wallet::get(&mut conn, user).await?;
        Ok(Response::new(pb::GetWalletResponse {
            wallet: Some(self.wallet(&row)),
        }))
    }

    #[tracing::instrument(name = "payment.charge_points", skip_all, fields(user.id))]
    async fn charge_points(
        &self,
        request: Request<pb::ChargePointsRequest>,
    ) -> GrpcResult<pb::ChargePointsResponse> {
        let user = principal::require_user(&request)?.user_id;
        tracing::Span::current().record("user.id", tracing::field::display(user));
        let r = request.get_ref();
        let mut violations = Vec::new();
        let amount = match &r.amount {
            None => {
                violations.push(Violation::new("amount", "is required"));
                None
            }
            Some(m) if m.amount_minor <= 0 => {
                violations.push(Violation::new("amount.amount_minor", "must be more than 0"));
                None
            }
            Some(m) if m.amount_minor > MAX_CHARGE => {
                violations.push(Violation::new(
                    "amount.amount_minor",
                    format!("must be at most {MAX_CHARGE}"),
                ));
                None
            }
            Some(m) => Some(m),
        };
        if !domain::valid_idempotency_key(&r.idempotency_key) {
            violations.push(Violation::new(
                "idempotency_key",
                "must be 1-128 printable ascii characters",
            ));
        }
        let Some(amount) = amount.filter(|_| violations.is_empty()) else {
            return Err(PaymentError::Validation(violations).into());
        };
        let currency = &self.context.settings.payments.currency;
        if &amount.currency_code != currency {
            return Err(PaymentError::CurrencyMismatch {
                field: "amount.currency_code",
                expected: currency.clone(),
            }
            .into());
        }
        let charge = Charge {
            user_id: user,
            amount: amount.amount_minor,
            idempotency_key: r.idempotency_key.clone(),
            request_hash: request_hash(&[
                amount.amount_minor.to_string(),
                amount.currency_code.clone(),
            ]),
        };
        let (row, entry) = wallet::charge(
            &self.context.pool,
            &charge,
            &self.context.settings.wallet,
            self.context.clock.now(),
        )
        .await?;
        Ok(Response::new(pb::ChargePointsResponse {
            wallet: Some(self.wallet(&row)),
            entry: Some(self.entry(&entry)),
        }))
    }

    #[tracing::instrument(name = "payment.list_ledger_entries", skip_all, fields(user.id))]
    async fn list_ledger_entries(
        &self,
        request: Request<pb::ListLedgerEntriesRequest>,
    ) -> GrpcResult<pb::ListLedgerEntriesResponse> {
        let user = principal::require_user(&request)?.user_id;
        tracing::Span::current().record("user.id", tracing::field::display(user));
        let r = request.get_ref();
        let limit = page_limit(r.page_size)?;
        let kinds = r
            .kinds
            .iter()
            .map(|value| match LedgerEntryKind::try_from(*value) {
                Ok(LedgerEntryKind::Charge) => Ok(Kind::Charge),
                Ok(LedgerEntryKind::Spend) => Ok(Kind::Spend),
                Ok(LedgerEntryKind::Refund) => Ok(Kind::Refund),
                Ok(LedgerEntryKind::Unspecified) | Err(_) => Err(PaymentError::field(
                    "kinds",
                    format!("{value} is not a ledger entry kind"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hash = wallet::entries_filter(user, &kinds);
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
            .map_err(PaymentError::from)?;
        let (rows, more) = wallet::entries(&mut conn, user, &kinds, after.as_ref(), limit).await?;
        let next_page_token = match rows.last() {
            Some(last) if more => PageToken {
                create_micros: last.wallet_version,
                id: last.entry_id,
                filter: hash,
            }
            .encode(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListLedgerEntriesResponse {
            entries: rows.iter().map(|row| self.entry(row)).collect(),
            next_page_token,
        }))
    }
}
