//! Test harness for the BFF: signing keys and tokens, a JWKS server that counts fetches, a fake
//! user service that counts calls and records the forwarded principal, and a BFF started on
//! 127.0.0.1:0 against the real Redis under a unique key prefix.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part of the harness"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mercato_bff::{Application, BffSettings};
use mercato_platform::settings::EnvSource;
use mercato_proto::mercato::user::v1 as user;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status};

mod fake_users;
mod tokens;

#[allow(
    unused_imports,
    reason = "each test binary uses some of these, none all of them"
)]
pub use fake_users::{FakeUsers, SeenCall};
#[allow(
    unused_imports,
    reason = "each test binary uses some of these, none all of them"
)]
pub use tokens::{AUDIENCE, JwksServer, TestKey, claims, now, tampered, unsigned_token};

/// The Redis URL for tests.
pub fn redis_url() -> String {
    std::env::var("MERCATO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A unique Redis key prefix, whose keys are deleted when the guard drops.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> Self {
        Self(format!(
            "mercato:test:bff:{}:",
            uuid::Uuid::new_v4().simple()
        ))
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// Settings for a test BFF: one built-in issuer, the given downstream, a unique Redis prefix,
/// generous rate limits unless overridden by `extra` pairs.
pub fn settings(
    issuer: &JwksServer,
    user_service_url: &str,
    prefix: &RedisPrefix,
    extra: &[(&str, &str)],
) -> BffSettings {
    let mut pairs: Vec<(String, String)> = vec![
        ("MERCATO_BFF__REDIS_URL".into(), redis_url()),
        ("MERCATO_BFF__REDIS_KEY_PREFIX".into(), prefix.0.clone()),
        (
            "MERCATO_BFF__USER_SERVICE_URL".into(),
            user_service_url.to_owned(),
        ),
        ("MERCATO_BFF__ISSUER".into(), issuer.issuer()),
        ("MERCATO_BFF__JWKS_URL".into(), issuer.jwks_url()),
        ("MERCATO_BFF__AUDIENCE".into(), AUDIENCE.to_owned()),
        (
            "MERCATO_BFF__RATE_LIMIT_READ_REQUESTS".into(),
            "100000".into(),
        ),
        ("MERCATO_BFF__RATE_LIMIT_READ_BURST".into(), "100000".into()),
        (
            "MERCATO_BFF__RATE_LIMIT_WRITE_REQUESTS".into(),
            "100000".into(),
        ),
        (
            "MERCATO_BFF__RATE_LIMIT_WRITE_BURST".into(),
            "100000".into(),
        ),
        (
            "MERCATO_BFF__RATE_LIMIT_AUTH_REQUESTS".into(),
            "100000".into(),
        ),
        ("MERCATO_BFF__RATE_LIMIT_AUTH_BURST".into(), "100000".into()),
        (
            "MERCATO_BFF__CORS_ALLOWED_ORIGINS".into(),
            "https://shop.example".into(),
        ),
    ];
    for (key, value) in extra {
        let key = format!("MERCATO_BFF__{key}");
        pairs.retain(|(existing, _)| *existing != key);
        pairs.push((key, (*value).to_owned()));
    }
    BffSettings::from_source(&EnvSource::from_pairs(pairs)).expect("test settings are valid")
}

/// A running BFF; stops when dropped.
pub struct TestBff {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl TestBff {
    pub async fn start(settings: BffSettings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind bff");
        let app = Application::build(settings, listener).expect("bff builds");
        let addr = app.local_addr();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            app.run_until(stopped.cancelled_owned())
                .await
                .expect("bff serves");
        });
        Self { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A gRPC channel to the BFF.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .expect("bff url")
            .connect()
            .await
            .expect("bff accepts connections")
    }
}

impl Drop for TestBff {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A request carrying `authorization: Bearer {token}`.
pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("token header"),
    );
    request
}

/// The `ErrorInfo` reason of a status.
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// Settings for a BFF in front of the real, in-process user service (its built-in issuer) and,
/// when given, the product service, with rate limits far above what a table of cases needs
/// (every case registers and signs in users from one address). `extra` adds or overrides keys
/// (without the `MERCATO_BFF__` prefix).
pub fn real_services_settings(
    users: &mercato_user::testing::RunningUser,
    product_uri: Option<&str>,
    prefix: &RedisPrefix,
    extra: &[(&str, &str)],
) -> BffSettings {
    let mut pairs = vec![
        ("REDIS_URL".to_owned(), redis_url()),
        ("REDIS_KEY_PREFIX".to_owned(), prefix.0.clone()),
        ("USER_SERVICE_URL".to_owned(), users.grpc_uri()),
        ("ISSUER".to_owned(), format!("http://{}", users.http_addr)),
    ];
    if let Some(uri) = product_uri {
        pairs.push(("PRODUCT_SERVICE_URL".to_owned(), uri.to_owned()));
    }
    for class in ["AUTH", "READ", "WRITE"] {
        for knob in ["REQUESTS", "BURST"] {
            pairs.push((format!("RATE_LIMIT_{class}_{knob}"), "100000".to_owned()));
        }
    }
    pairs.extend(
        extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    );
    BffSettings::from_source(&EnvSource::from_pairs(
        pairs
            .into_iter()
            .map(|(key, value)| (format!("MERCATO_BFF__{key}"), value)),
    ))
    .expect("bff settings")
}

/// The secret localstripe signs its webhooks with (the payment service accepts it beside its test
/// secret).
pub const LOCALSTRIPE_WEBHOOK_SECRET: &str = "whsec_localstripe_mercato";

/// The publishable key a BFF in front of a Stripe stack hands to payers.
pub const STRIPE_PUBLISHABLE_KEY: &str = "pk_test_mercato";

/// The events localstripe sends the payment service's webhook endpoint.
const STRIPE_EVENTS: &[&str] = &["payment_intent.succeeded", "payment_intent.payment_failed"];

/// How [`Services::start_full_with`] sets up the whole stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullStack {
    /// STRIPE payments go to a localstripe started for the test (`make localstripe` installs
    /// it), whose signed webhooks reach the payment service; without it the payment service's
    /// sandbox serves STRIPE as it does SANDBOX.
    pub stripe: bool,
    /// The process service's carrier: `Simulated` ships and delivers on its own, each step
    /// [`Self::shipment_delay`] after the previous one; `Manual` only commits the stock and
    /// leaves shipping and delivery to `ShipmentService` calls (so a paid order stays PAID).
    pub carrier: mercato_process::settings::CarrierMode,
    /// The process service's `SHIPMENT_DELAY`.
    pub shipment_delay: std::time::Duration,
}

impl Default for FullStack {
    /// Sandbox and points payments, the simulated carrier, a short delay.
    fn default() -> Self {
        Self {
            stripe: false,
            carrier: mercato_process::settings::CarrierMode::Simulated,
            shipment_delay: std::time::Duration::from_millis(200),
        }
    }
}

/// The real user, product and order services in-process, each on its own fresh resources (the
/// order service calling the product service), for tests that put a BFF in front of them; with
/// [`Services::start_with_payments`], the payment service too, all of them but the user
/// service on one broker namespace so the checkout saga runs over the real bus; with
/// [`Services::start_full`] (or [`Services::start_full_with`]) also the process service on that
/// bus, so paid orders are shipped and finished, and optionally localstripe behind the payment
/// service's STRIPE method.
pub struct Services {
    pub users: mercato_user::testing::RunningUser,
    pub products: mercato_product::testing::RunningProduct,
    /// `None` once a test stopped it.
    pub orders: Option<mercato_order::testing::RunningOrder>,
    /// With [`Services::start_with_payments`] and [`Services::start_full`].
    pub payments: Option<mercato_payment::testing::RunningPayment>,
    /// Only with [`Services::start_full`].
    pub process: Option<mercato_process::testing::RunningProcess>,
    /// Only with [`FullStack::stripe`].
    pub stripe: Option<mercato_stripe::testing::LocalStripe>,
    pub prefix: RedisPrefix,
    // The resources outlive the services (fields drop in declaration order).
    _process_env: Option<mercato_process::testing::TestEnv>,
    _payment_env: Option<mercato_payment::testing::TestEnv>,
    _order_env: mercato_order::testing::TestEnv,
    _product_env: mercato_product::testing::TestEnv,
    _user_env: mercato_user::testing::TestEnv,
}

/// Which services [`Services`] starts beyond user, product and order.
#[derive(Debug, Clone, Copy)]
enum Stack {
    /// Each service on its own broker namespace.
    Apart,
    /// Product, order and payment on one namespace.
    Payments,
    /// Product, order, payment and process on one namespace.
    Full(FullStack),
}

impl Services {
    /// Starts the three services, each on its own broker namespace (no service reacts to
    /// another's events: orders stay PENDING).
    pub async fn start() -> Self {
        Self::start_stack(Stack::Apart).await
    }

    /// Starts the user, product, order and payment services; the last three share one broker
    /// namespace, so orders get payments, payments settle orders and ended orders give their
    /// stock back.
    pub async fn start_with_payments() -> Self {
        Self::start_stack(Stack::Payments).await
    }

    /// The whole system: the user, product, order, payment and process services, the last four
    /// on one broker namespace, with [`FullStack::default`] (sandbox payments, the simulated
    /// carrier with a short delay): a paid order is committed, shipped with a tracking number and
    /// finished.
    pub async fn start_full() -> Self {
        Self::start_full_with(FullStack::default()).await
    }

    /// The whole system set up as `stack` says.
    pub async fn start_full_with(stack: FullStack) -> Self {
        Self::start_stack(Stack::Full(stack)).await
    }

    async fn start_stack(stack: Stack) -> Self {
        let shared_bus = !matches!(stack, Stack::Apart);
        let full = match stack {
            Stack::Full(full) => Some(full),
            Stack::Apart | Stack::Payments => None,
        };
        let stripe = match full {
            Some(FullStack { stripe: true, .. }) => {
                Some(mercato_stripe::testing::LocalStripe::start().await)
            }
            Some(FullStack { stripe: false, .. }) | None => None,
        };
        // The whole system holds a pool per service: smaller pools keep two such tests (and the
        // other crates' tests beside them) within the server's connection limit. The other
        // stacks keep the services' defaults.
        let pool = full.and(std::num::NonZeroU32::new(4));
        let user_env = mercato_user::testing::TestEnv::new()
            .await
            .expect("user resources");
        let users = user_env
            .start(|settings| {
                if let Some(pool) = pool {
                    settings.database.max_connections = pool;
                }
            })
            .await
            .expect("user service starts");
        let product_env = mercato_product::testing::TestEnv::new()
            .await
            .expect("product resources");
        let products = product_env
            .start(|settings| {
                if let Some(pool) = pool {
                    settings.database.max_connections = pool;
                }
            })
            .await
            .expect("product service starts");
        let namespace = product_env.broker().namespace().to_owned();
        let order_env = mercato_order::testing::TestEnv::new(products.grpc_uri())
            .await
            .expect("order resources");
        let order_namespace = namespace.clone();
        let orders = order_env
            .start(|settings| {
                if let Some(pool) = pool {
                    settings.database.max_connections = pool;
                }
                if shared_bus {
                    settings.bus_namespace = order_namespace;
                }
            })
            .await
            .expect("order service starts");
        let (payments, payment_env) = if shared_bus {
            let payment_env = mercato_payment::testing::TestEnv::new(orders.grpc_uri())
                .await
                .expect("payment resources");
            let payment_namespace = namespace.clone();
            let stripe_url = stripe.as_ref().map(|stripe| stripe.base_url());
            let payments = payment_env
                .start(|settings| {
                    if let Some(pool) = pool {
                        settings.database.max_connections = pool;
                    }
                    settings.bus_namespace = payment_namespace;
                    if let Some(base_url) = stripe_url {
                        use secrecy::SecretString;
                        settings.payments.stripe_secret_key =
                            Some(SecretString::from(mercato_stripe::testing::TEST_SECRET_KEY));
                        settings.payments.stripe_api_base_url = base_url;
                        settings
                            .payments
                            .webhook_secrets
                            .push(SecretString::from(LOCALSTRIPE_WEBHOOK_SECRET));
                    }
                })
                .await
                .expect("payment service starts");
            if let Some(stripe) = &stripe {
                let url = format!("{}{}", payments.http_uri(), mercato_payment::webhook::PATH);
                stripe
                    .register_webhook(
                        "mercato",
                        &url,
                        LOCALSTRIPE_WEBHOOK_SECRET,
                        Some(STRIPE_EVENTS),
                    )
                    .await;
            }
            (Some(payments), Some(payment_env))
        } else {
            (None, None)
        };
        let (process, process_env) = match full {
            Some(full) => {
                let process_env =
                    mercato_process::testing::TestEnv::new(orders.grpc_uri(), products.grpc_uri())
                        .await
                        .expect("process resources");
                let process = process_env
                    .start(|settings| {
                        if let Some(pool) = pool {
                            settings.database.max_connections = pool;
                        }
                        settings.bus_namespace = namespace;
                        settings.fulfilment.carrier = full.carrier;
                        settings.fulfilment.shipment_delay = full.shipment_delay;
                    })
                    .await
                    .expect("process service starts");
                (Some(process), Some(process_env))
            }
            None => (None, None),
        };
        Self {
            users,
            products,
            orders: Some(orders),
            payments,
            process,
            stripe,
            prefix: RedisPrefix::new(),
            _process_env: process_env,
            _payment_env: payment_env,
            _order_env: order_env,
            _product_env: product_env,
            _user_env: user_env,
        }
    }

    /// The payment service's gRPC URI.
    pub fn payment_uri(&self) -> String {
        self.payments
            .as_ref()
            .expect("the payment service runs")
            .grpc_uri()
    }

    /// The process service's gRPC URI.
    pub fn process_uri(&self) -> String {
        self.process
            .as_ref()
            .expect("the process service runs")
            .grpc_uri()
    }

    /// The localstripe behind the payment service.
    pub fn stripe(&self) -> &mercato_stripe::testing::LocalStripe {
        self.stripe.as_ref().expect("localstripe runs")
    }

    /// The order service's gRPC URI.
    pub fn order_uri(&self) -> String {
        self.orders
            .as_ref()
            .expect("the order service runs")
            .grpc_uri()
    }

    /// A BFF in front of every service that runs (with [`STRIPE_PUBLISHABLE_KEY`] when
    /// localstripe does); `extra` adds settings (without the `MERCATO_BFF__` prefix).
    pub async fn bff(&self, extra: &[(&str, &str)]) -> TestBff {
        self.bff_with_order_service(&self.order_uri(), extra).await
    }

    /// A BFF in front of the other services and whatever serves the order API at `order_uri`.
    pub async fn bff_with_order_service(&self, order_uri: &str, extra: &[(&str, &str)]) -> TestBff {
        let payment_uri = self.payments.as_ref().map(|payments| payments.grpc_uri());
        let process_uri = self.process.as_ref().map(|process| process.grpc_uri());
        let mut pairs = vec![("ORDER_SERVICE_URL", order_uri)];
        if let Some(uri) = &payment_uri {
            pairs.push(("PAYMENT_SERVICE_URL", uri));
        }
        if let Some(uri) = &process_uri {
            pairs.push(("PROCESS_SERVICE_URL", uri));
        }
        if self.stripe.is_some() {
            pairs.push(("STRIPE_PUBLISHABLE_KEY", STRIPE_PUBLISHABLE_KEY));
        }
        // Later pairs win, so `extra` overrides any of these.
        pairs.extend_from_slice(extra);
        TestBff::start(real_services_settings(
            &self.users,
            Some(&self.products.grpc_uri()),
            &self.prefix,
            &pairs,
        ))
        .await
    }

    /// Stops every service that still runs, checking each stops cleanly (the process service
    /// first, since it calls the order and product services; localstripe last).
    pub async fn stop(self) {
        if let Some(process) = self.process {
            process.stop().await.expect("process service stops cleanly");
        }
        if let Some(payments) = self.payments {
            payments
                .stop()
                .await
                .expect("payment service stops cleanly");
        }
        if let Some(orders) = self.orders {
            orders.stop().await.expect("order service stops cleanly");
        }
        self.products
            .stop()
            .await
            .expect("product service stops cleanly");
        self.users.stop().await.expect("user service stops cleanly");
        drop(self.stripe);
    }
}

/// The unit price of every SKU [`seed_sku`] creates, in JPY.
pub const SKU_PRICE: i64 = 1_200;

/// A published product with one active SKU priced [`SKU_PRICE`] and `on_hand` units, seeded on
/// the product service as its seller; returns the SKU id.
pub async fn seed_sku(product_uri: &str, on_hand: i64) -> String {
    seed_sku_for(product_uri, uuid::Uuid::new_v4(), on_hand).await
}

/// Like [`seed_sku`], the product belonging to the seller `seller_id`.
pub async fn seed_sku_for(product_uri: &str, seller_id: uuid::Uuid, on_hand: i64) -> String {
    use mercato_platform::principal::{Principal, Role};
    use mercato_proto::mercato::common::v1 as common;
    use mercato_proto::mercato::product::v1 as product;

    let channel = tonic::transport::Channel::from_shared(product_uri.to_owned())
        .expect("product uri")
        .connect_lazy();
    let seller = Principal::new(seller_id, [Role::Seller]);
    fn as_seller<T>(seller: &Principal, message: T) -> Request<T> {
        let mut request = Request::new(message);
        seller.write_metadata(request.metadata_mut());
        request
    }
    let mut products = product::product_service_client::ProductServiceClient::new(channel.clone());
    let created = products
        .create_product(as_seller(
            &seller,
            product::CreateProductRequest {
                product: Some(product::Product {
                    name: "Test mug".to_owned(),
                    category: "kitchen".to_owned(),
                    skus: vec![product::Sku {
                        sku_code: format!("MUG-{}", uuid::Uuid::new_v4().simple()),
                        price: Some(common::Money {
                            currency_code: "JPY".to_owned(),
                            amount_minor: SKU_PRICE,
                        }),
                        active: true,
                        ..product::Sku::default()
                    }],
                    ..product::Product::default()
                }),
                idempotency_key: uuid::Uuid::new_v4().to_string(),
                seller_id: String::new(),
            },
        ))
        .await
        .expect("product created")
        .into_inner()
        .product
        .expect("product");
    let sku_id = created.skus[0].sku_id.clone();
    products
        .publish_product(as_seller(
            &seller,
            product::PublishProductRequest {
                product_id: created.product_id,
            },
        ))
        .await
        .expect("published");
    let mut stock = product::stock_service_client::StockServiceClient::new(channel);
    let version = stock
        .get_stock(as_seller(
            &seller,
            product::GetStockRequest {
                sku_id: sku_id.clone(),
            },
        ))
        .await
        .expect("stock")
        .into_inner()
        .stock
        .expect("stock level")
        .version;
    stock
        .adjust_stock(as_seller(
            &seller,
            product::AdjustStockRequest {
                sku_id: sku_id.clone(),
                on_hand,
                expected_version: version,
                reason: "bff test".to_owned(),
                idempotency_key: uuid::Uuid::new_v4().to_string(),
            },
        ))
        .await
        .expect("stocked");
    sku_id
}

/// Registers a fresh buyer through the BFF; returns their access token.
pub async fn sign_up(
    auth: &mut mercato_proto::mercato::bff::v1::auth_service_client::AuthServiceClient<
        tonic::transport::Channel,
    >,
) -> String {
    auth.register(mercato_proto::mercato::bff::v1::RegisterRequest {
        email: format!("shopper-{}@example.com", uuid::Uuid::new_v4().simple()),
        password: "correct horse battery".to_owned(),
        display_name: "Shopper".to_owned(),
    })
    .await
    .expect("registered")
    .into_inner()
    .tokens
    .expect("tokens")
    .access_token
}

/// A Japanese shipping address already in normal form (what is saved equals what is sent).
pub fn shipping_address(recipient: &str) -> mercato_proto::mercato::common::v1::PostalAddress {
    mercato_proto::mercato::common::v1::PostalAddress {
        recipient_name: recipient.to_owned(),
        recipient_name_kana: String::new(),
        country_code: "JP".to_owned(),
        postal_code: "150-0001".to_owned(),
        region: "東京都".to_owned(),
        locality: "渋谷区".to_owned(),
        address_line1: "神宮前1-2-3".to_owned(),
        address_line2: String::new(),
        phone_number: "09012345678".to_owned(),
    }
}

/// Registers a fresh user through the BFF, grants them the admin role on the user service (as
/// an internal admin would) and signs them in again, so the returned access token carries the
/// role.
pub async fn sign_up_admin(
    auth: &mut mercato_proto::mercato::bff::v1::auth_service_client::AuthServiceClient<
        tonic::transport::Channel,
    >,
    user_uri: &str,
) -> String {
    sign_up_with_role(
        auth,
        user_uri,
        mercato_proto::mercato::common::v1::Role::Admin,
    )
    .await
    .1
}

/// Registers a fresh user through the BFF, grants them `role` on the user service (as an
/// internal admin would) and signs them in again; their user id and an access token carrying the
/// role.
pub async fn sign_up_with_role(
    auth: &mut mercato_proto::mercato::bff::v1::auth_service_client::AuthServiceClient<
        tonic::transport::Channel,
    >,
    user_uri: &str,
    role: mercato_proto::mercato::common::v1::Role,
) -> (uuid::Uuid, String) {
    use mercato_platform::principal::{Principal, Role};
    use mercato_proto::mercato::bff::v1 as bff;

    // "admin", "seller", ...: the e-mail's local part, and capitalised the display name.
    let name = role
        .as_str_name()
        .trim_start_matches("ROLE_")
        .to_ascii_lowercase();
    let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
    let display_name = name
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(name.chars().skip(1))
        .collect::<String>();
    let password = "correct horse battery";
    let user_id = auth
        .register(bff::RegisterRequest {
            email: email.clone(),
            password: password.to_owned(),
            display_name,
        })
        .await
        .expect("the user registers")
        .into_inner()
        .account
        .expect("account")
        .user_id;
    let channel = tonic::transport::Channel::from_shared(user_uri.to_owned())
        .expect("user uri")
        .connect_lazy();
    let mut grant = Request::new(user::GrantRoleRequest {
        user_id: user_id.clone(),
        role: role.into(),
    });
    Principal::new(uuid::Uuid::new_v4(), [Role::Buyer, Role::Admin])
        .write_metadata(grant.metadata_mut());
    user::user_service_client::UserServiceClient::new(channel)
        .grant_role(grant)
        .await
        .expect("the role is granted");
    let token = auth
        .login(bff::LoginRequest {
            email,
            password: password.to_owned(),
        })
        .await
        .expect("the user signs in again")
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token;
    (
        uuid::Uuid::parse_str(&user_id).expect("user id is a uuid"),
        token,
    )
}

/// The fields named by a status's `BadRequest` details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|violation| violation.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A stand-in for an internal service that only counts the connections it is offered: its URI
/// and the count.
pub async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind counting listener");
    let uri = format!("http://{}", listener.local_addr().expect("listener addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (uri, accepted)
}

/// What a browser does on the sandbox page: loads it, finds the form whose button says
/// `button` and posts it (the form's action is a path on the page's origin). The HTTP status
/// of the post.
pub async fn press(payment_url: &str, button: &str) -> u16 {
    mercato_bff::app::install_crypto_provider();
    let http = reqwest::Client::new();
    let page = http
        .get(payment_url)
        .send()
        .await
        .expect("the sandbox page answers");
    assert_eq!(page.status().as_u16(), 200, "the sandbox page loads");
    let html = page.text().await.expect("the page's html");
    let action = html
        .split("<form")
        .skip(1)
        .find(|form| form.contains(&format!(">{button}</button>")))
        .and_then(|form| form.split("action=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the page has a {button} form: {html}"))
        .to_owned();
    let url = reqwest::Url::parse(payment_url)
        .expect("the payment url is a url")
        .join(&action)
        .expect("the form action resolves against the page");
    http.post(url)
        .send()
        .await
        .expect("the sandbox button answers")
        .status()
        .as_u16()
}
