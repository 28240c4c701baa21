//! The route table: which RPCs are public (an explicit allow-list) and which rate-limit class
//! every RPC belongs to. Anything not listed needs a token and counts as a write, so a new RPC is
//! protected until someone deliberately opens it.

/// Rate-limit class of an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Sign-in traffic: the tightest budget, and fail-closed when Redis is down.
    Auth,
    /// Reads.
    Read,
    /// Everything that changes state (the default for unknown routes).
    Write,
    /// Health checks: never limited, so probes keep working under load.
    Health,
}

impl RouteClass {
    /// Name used in Redis keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Read => "read",
            Self::Write => "write",
            Self::Health => "health",
        }
    }
}

/// What the edge does with one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Whether the RPC may be called without a token.
    pub public: bool,
    /// Its rate-limit class.
    pub class: RouteClass,
}

/// RPCs callable without a token (`/package.Service/Method`; `*` matches every method).
///
/// AuthService is public as a whole: its RPCs either create the credential or take the refresh
/// token as the credential (Logout).
pub const PUBLIC_RPCS: &[&str] = &[
    "/mercato.bff.v1.AuthService/*",
    "/mercato.bff.v1.CatalogService/*",
    "/mercato.bff.v1.CouponService/ListCampaigns",
    "/mercato.bff.v1.CouponService/GetCampaign",
    "/grpc.health.v1.Health/*",
    "/grpc.reflection.v1.ServerReflection/*",
];

/// The route of a request path.
pub fn route(path: &str) -> Route {
    let public = PUBLIC_RPCS.iter().any(|pattern| matches(pattern, path));
    let (service, method) = split(path);
    let class = match service {
        "mercato.bff.v1.AuthService" => RouteClass::Auth,
        "grpc.health.v1.Health" => RouteClass::Health,
        "grpc.reflection.v1.ServerReflection" => RouteClass::Read,
        _ if ["Get", "List", "Search", "Lookup", "Watch"]
            .iter()
            .any(|verb| method.starts_with(verb)) =>
        {
            RouteClass::Read
        }
        _ => RouteClass::Write,
    };
    Route { public, class }
}

fn matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix) && !path[prefix.len()..].contains('/'),
        None => pattern == path,
    }
}

/// `("package.Service", "Method")` of `/package.Service/Method`.
fn split(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_service_is_public_and_in_the_auth_class() {
        let login = route("/mercato.bff.v1.AuthService/Login");
        assert!(login.public);
        assert_eq!(login.class, RouteClass::Auth);
    }

    #[test]
    fn account_rpcs_need_a_token() {
        let get = route("/mercato.bff.v1.AccountService/GetAccount");
        assert!(!get.public);
        assert_eq!(get.class, RouteClass::Read);
        let update = route("/mercato.bff.v1.AccountService/UpdateAccount");
        assert!(!update.public);
        assert_eq!(update.class, RouteClass::Write);
    }

    #[test]
    fn only_campaign_reads_of_the_coupon_service_are_public() {
        assert!(route("/mercato.bff.v1.CouponService/ListCampaigns").public);
        assert!(route("/mercato.bff.v1.CouponService/GetCampaign").public);
        assert_eq!(
            route("/mercato.bff.v1.CouponService/ClaimCoupon").class,
            RouteClass::Write
        );
        assert!(!route("/mercato.bff.v1.CouponService/ClaimCoupon").public);
        assert!(!route("/mercato.bff.v1.CouponService/ListMyCoupons").public);
    }

    #[test]
    fn wallet_and_payment_rpcs_need_a_token_and_only_charges_are_writes() {
        for (path, class) in [
            ("/mercato.bff.v1.WalletService/GetWallet", RouteClass::Read),
            (
                "/mercato.bff.v1.WalletService/ListLedgerEntries",
                RouteClass::Read,
            ),
            (
                "/mercato.bff.v1.WalletService/ChargePoints",
                RouteClass::Write,
            ),
            (
                "/mercato.bff.v1.OrderService/GetOrderPayment",
                RouteClass::Read,
            ),
            (
                "/mercato.bff.v1.AdminService/SearchPayments",
                RouteClass::Read,
            ),
            (
                "/mercato.bff.v1.AdminService/RefundPayment",
                RouteClass::Write,
            ),
        ] {
            let found = route(path);
            assert!(!found.public, "{path}");
            assert_eq!(found.class, class, "{path}");
        }
    }

    #[test]
    fn unknown_routes_are_protected_writes() {
        let unknown = route("/mercato.bff.v1.NewService/DoThing");
        assert!(!unknown.public);
        assert_eq!(unknown.class, RouteClass::Write);
        assert!(!route("/mercato.bff.v1.CatalogService/Nested/Path").public);
        assert!(!route("/mercato.bff.v1.CatalogServiceX/ListProducts").public);
    }
}
