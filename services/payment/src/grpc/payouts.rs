//! `PayoutService`: a seller's own payout account and payouts. Creating an account or a link
//! needs ROLE_SELLER and acts on the caller; the two reads also take a `seller_id`, which only
//! an admin or an internal service may set to someone else's (an admin's or internal
//! `ListPayouts` without one lists every seller's). Bad input is refused naming the field before
//! anything is written or sent to the provider.

use mercato_platform::principal::{self, Role};
use mercato_proto::mercato::common::v1::{Money, PayoutStatus};
use mercato_proto::mercato::payment::v1 as pb;
use pb::payout_service_server::PayoutService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::domain;
use crate::error::{PaymentError, Violation};
use crate::grpc::{page_limit, uuid_field};
use crate::payments::events::timestamp;
use crate::payments::store::PageToken;
use crate::payouts::accounts::{self, CreateAccount};
use crate::payouts::rules::PayoutState;
use crate::payouts::store::{self, PayoutFilter, PayoutRow, SellerAccountRow};

type GrpcResult<T> = Result<Response<T>, Status>;

/// The longest redirect URL accepted.
const MAX_URL: usize = 2_048;

/// The `PayoutService` implementation.
#[derive(Debug, Clone)]
pub struct PayoutGrpc {
    context: PaymentContext,
}

impl PayoutGrpc {
    /// The service over `context`.
    pub fn new(context: PaymentContext) -> Self {
        Self { context }
    }
}

/// Whose data a read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// One seller's.
    Seller(Uuid),
    /// Every seller's (admins and internal callers, no `seller_id`).
    Everyone,
}

/// The seller a read is about: the caller (who needs ROLE_SELLER, or ROLE_ADMIN for
/// `every_seller` listings), or the named seller for an admin or an internal caller.
fn read_scope<T>(
    request: &Request<T>,
    raw_seller: &str,
    every_seller: bool,
) -> Result<Scope, Status> {
    let internal = principal::is_internal_service(request);
    if !raw_seller.is_empty() {
        let named = uuid_field(raw_seller, "seller_id")?;
        if internal {
            return Ok(Scope::Seller(named));
        }
        let caller = principal::require_user(request)?;
        if caller.user_id == named && caller.has_role(Role::Seller) {
            return Ok(Scope::Seller(named));
        }
        principal::require_role(request, Role::Admin)?;
        return Ok(Scope::Seller(named));
    }
    if internal && every_seller {
        return Ok(Scope::Everyone);
    }
    let caller = principal::require_user(request)?;
    if every_seller && caller.is_admin() {
        return Ok(Scope::Everyone);
    }
    Ok(Scope::Seller(
        principal::require_role(request, Role::Seller)?.user_id,
    ))
}

fn is_loopback(host: &str) -> bool {
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') {
            name
        } else {
            host
        }
    });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// A redirect URL: https, or http to a loopback host (development); at most 2,048 characters.
fn redirect_url(raw: &str, field: &str, violations: &mut Vec<Violation>) -> String {
    let problem = if raw.is_empty() {
        Some("is required".to_owned())
    } else if raw.len() > MAX_URL {
        Some(format!("must be at most {MAX_URL} characters"))
    } else if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters".to_owned())
    } else {
        let (secure, rest) = match (raw.strip_prefix("https://"), raw.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => (false, ""),
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.contains('@') {
            Some("must be an absolute https url".to_owned())
        } else if !secure && !is_loopback(host) {
            Some("must be an https url (http only for localhost)".to_owned())
        } else {
            None
        }
    };
    if let Some(problem) = problem {
        violations.push(Violation::new(field, problem));
    }
    raw.to_owned()
}

fn country_code(raw: &str, violations: &mut Vec<Violation>) -> String {
    if raw.len() == 2 && raw.bytes().all(|b| b.is_ascii_alphabetic()) {
        raw.to_ascii_uppercase()
    } else {
        violations.push(Violation::new(
            "country_code",
            if raw.is_empty() {
                "is required"
            } else {
                "must be an ISO 3166-1 alpha-2 code, e.g. JP"
            },
        ));
        String::new()
    }
}

fn money(currency: &str, amount: i64) -> Option<Money> {
    Some(Money {
        currency_code: currency.to_owned(),
        amount_minor: amount,
    })
}

fn account_to_proto(account: &SellerAccountRow) -> Result<pb::SellerAccount, PaymentError> {
    Ok(pb::SellerAccount {
        seller_id: account.seller_id.to_string(),
        provider_account_id: account.provider_account_id.clone(),
        status: account.status()?.to_proto().into(),
        country_code: account.country_code.clone(),
        create_time: Some(timestamp(account.create_time)),
        update_time: Some(timestamp(account.update_time)),
    })
}

/// The wire form of a payout.
pub fn payout_to_proto(payout: &PayoutRow) -> Result<pb::Payout, PaymentError> {
    Ok(pb::Payout {
        payout_id: payout.payout_id.to_string(),
        seller_id: payout.seller_id.to_string(),
        order_id: payout.order_id.to_string(),
        payment_id: payout.payment_id.to_string(),
        gross_amount: money(&payout.currency, payout.gross_amount),
        platform_fee: money(&payout.currency, payout.platform_fee),
        net_amount: money(&payout.currency, payout.net_amount),
        status: payout.state()?.to_proto().into(),
        provider_transfer_id: payout.provider_transfer_id.clone().unwrap_or_default(),
        create_time: Some(timestamp(payout.create_time)),
        transfer_time: payout.transfer_time.map(timestamp),
        reverse_time: payout.reverse_time.map(timestamp),
    })
}

fn expire_time(link: &crate::provider::connect::Link) -> Option<prost_types::Timestamp> {
    link.expires_at
        .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 })
}

fn states(raw: &[i32]) -> Result<Vec<PayoutState>, PaymentError> {
    raw.iter()
        .map(|value| {
            PayoutStatus::try_from(*value)
                .ok()
                .and_then(PayoutState::from_proto)
                .ok_or_else(|| {
                    PaymentError::field("statuses", format!("{value} is not a payout status"))
                })
        })
        .collect()
}

#[tonic::async_trait]
impl PayoutService for PayoutGrpc {
    #[tracing::instrument(name = "payment.get_seller_account", skip_all, fields(seller.id))]
    async fn get_seller_account(
        &self,
        request: Request<pb::GetSellerAccountRequest>,
    ) -> GrpcResult<pb::GetSellerAccountResponse> {
        let Scope::Seller(seller) = read_scope(&request, &request.get_ref().seller_id, false)?
        else {
            return Err(
                PaymentError::Corrupt("an account read without a seller".to_owned()).into(),
            );
        };
        tracing::Span::current().record("seller.id", tracing::field::display(seller));
        let account = accounts::get(&self.context, seller).await?;
        Ok(Response::new(pb::GetSellerAccountResponse {
            seller_account: Some(account_to_proto(&account)?),
        }))
    }

    #[tracing::instrument(name = "payment.create_seller_account", skip_all, fields(seller.id))]
    async fn create_seller_account(
        &self,
        request: Request<pb::CreateSellerAccountRequest>,
    ) -> GrpcResult<pb::CreateSellerAccountResponse> {
        let seller = principal::require_role(&request, Role::Seller)?.user_id;
        tracing::Span::current().record("seller.id", tracing::field::display(seller));
        let pb::CreateSellerAccountRequest {
            country_code: raw_country,
            return_url,
            refresh_url,
            idempotency_key,
        } = request.into_inner();
        let mut violations = Vec::new();
        let country_code = country_code(&raw_country, &mut violations);
        let return_url = redirect_url(&return_url, "return_url", &mut violations);
        let refresh_url = redirect_url(&refresh_url, "refresh_url", &mut violations);
        if !domain::valid_idempotency_key(&idempotency_key) {
            violations.push(Violation::new(
                "idempotency_key",
                "must be 1-128 printable ASCII characters",
            ));
        }
        if !violations.is_empty() {
            return Err(PaymentError::Validation(violations).into());
        }
        let command = CreateAccount {
            country_code,
            return_url,
            refresh_url,
            idempotency_key,
        };
        let (account, link) = accounts::create(&self.context, seller, &command).await?;
        Ok(Response::new(pb::CreateSellerAccountResponse {
            seller_account: Some(account_to_proto(&account)?),
            onboarding_url_expire_time: expire_time(&link),
            onboarding_url: link.url,
        }))
    }

    #[tracing::instrument(name = "payment.create_seller_account_link", skip_all, fields(seller.id))]
    async fn create_seller_account_link(
        &self,
        request: Request<pb::CreateSellerAccountLinkRequest>,
    ) -> GrpcResult<pb::CreateSellerAccountLinkResponse> {
        let seller = principal::require_role(&request, Role::Seller)?.user_id;
        tracing::Span::current().record("seller.id", tracing::field::display(seller));
        let pb::CreateSellerAccountLinkRequest {
            return_url,
            refresh_url,
        } = request.into_inner();
        let mut violations = Vec::new();
        let return_url = redirect_url(&return_url, "return_url", &mut violations);
        let refresh_url = redirect_url(&refresh_url, "refresh_url", &mut violations);
        if !violations.is_empty() {
            return Err(PaymentError::Validation(violations).into());
        }
        let (link, status) =
            accounts::link(&self.context, seller, &return_url, &refresh_url).await?;
        Ok(Response::new(pb::CreateSellerAccountLinkResponse {
            expire_time: expire_time(&link),
            url: link.url,
            status: status.to_proto().into(),
        }))
    }

    #[tracing::instrument(name = "payment.list_payouts", skip_all)]
    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> GrpcResult<pb::ListPayoutsResponse> {
        let scope = read_scope(&request, &request.get_ref().seller_id, true)?;
        let pb::ListPayoutsRequest {
            page_size,
            page_token,
            statuses,
            seller_id: _,
        } = request.into_inner();
        let limit = page_limit(page_size)?;
        let filter = PayoutFilter {
            seller_id: match scope {
                Scope::Seller(seller) => Some(seller),
                Scope::Everyone => None,
            },
            states: states(&statuses)?,
        };
        let hash = filter.hash();
        let after = if page_token.is_empty() {
            None
        } else {
            Some(PageToken::decode(&page_token, &hash)?)
        };
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(PaymentError::from)?;
        let (rows, more) = store::list(&mut conn, &filter, after.as_ref(), limit).await?;
        let next_page_token = match rows.last() {
            Some(last) if more => PageToken {
                create_micros: last.create_time.timestamp_micros(),
                id: last.payout_id,
                filter: hash,
            }
            .encode(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListPayoutsResponse {
            payouts: rows.iter().map(payout_to_proto).collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Vec<Violation> {
        let mut violations = Vec::new();
        redirect_url(url, "return_url", &mut violations);
        violations
    }

    #[test]
    fn redirect_urls_are_https_or_loopback_http() {
        for good in [
            "https://shop.example/seller/payouts",
            "https://shop.example:8443/seller?x=1",
            "http://localhost:5173/seller",
            "http://127.0.0.1/seller",
            "http://[::1]:8080/seller",
        ] {
            assert!(check(good).is_empty(), "{good} refused");
        }
        for bad in [
            "",
            "http://shop.example/seller",
            "ftp://shop.example",
            "shop.example/seller",
            "https:///seller",
            "https://user@shop.example/",
            "https://shop.example/a b",
            "javascript:alert(1)",
        ] {
            let violations = check(bad);
            assert_eq!(violations.len(), 1, "{bad:?} accepted");
            assert_eq!(violations[0].field, "return_url");
        }
        assert_eq!(
            check(&format!("https://a.example/{}", "x".repeat(MAX_URL))).len(),
            1
        );
    }

    #[test]
    fn countries_are_two_letters_upper_cased() {
        let mut violations = Vec::new();
        assert_eq!(country_code("jp", &mut violations), "JP");
        assert!(violations.is_empty());
        for bad in ["", "J", "JPN", "J1"] {
            let mut violations = Vec::new();
            country_code(bad, &mut violations);
            assert_eq!(violations.len(), 1, "{bad:?} accepted");
        }
    }
}
