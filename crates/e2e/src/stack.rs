//! The whole system in-process: every service through its `testing` harness on fresh resources,
//! the order, product, payment and process services on one broker namespace (so the saga runs
//! over the real bus), a BFF in front of them with its HTTP side, and [`Shop`], the BFF's
//! clients driving a checkout as the storefront does; [`ScaledStack`], the same system with two
//! replicas of every backend service, each replaceable in place.

use std::net::SocketAddr;
use std::time::Duration;

use mercato_bff::{Application, BffSettings};
use mercato_platform::principal::{Principal, Role};
use mercato_platform::settings::EnvSource;
use mercato_platform::testing::ServiceAddress;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as product;
use mercato_testkit::TestRedis;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request};
use uuid::Uuid;

/// How long one saga step may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The unit price of the SKU [`seed_sku`] creates, in JPY.
pub const SKU_PRICE: i64 = 1_200;

/// The password every shopper the stack signs up uses (tests search logs for it).
pub const PASSWORD: &str = "correct horse battery staple 7";

/// The secret localstripe signs its webhooks with.
pub const LOCALSTRIPE_WEBHOOK_SECRET: &str = "whsec_localstripe_mercato_e2e";

/// How [`Stack::start`] sets the system up.
#[derive(Debug, Clone, Copy, Default)]
pub struct StackOptions {
    /// STRIPE payments go to a localstripe started for the test (`make localstripe` installs
    /// it) with the payment service's secret key set; otherwise the sandbox serves them.
    pub stripe: bool,
    /// BFF settings added or overridden (keys without the `MERCATO_BFF__` prefix).
    pub bff_settings: &'static [(&'static str, &'static str)],
}

/// The running system; [`Stack::stop`] stops every part cleanly.
#[derive(Debug)]
pub struct Stack {
    /// The user service.
    pub users: mercato_user::testing::RunningUser,
    /// The product service.
    pub products: mercato_product::testing::RunningProduct,
    /// The order service.
    pub orders: mercato_order::testing::RunningOrder,
    /// The payment service.
    pub payments: mercato_payment::testing::RunningPayment,
    /// The process service (simulated carrier, short delays).
    pub process: mercato_process::testing::RunningProcess,
    /// localstripe, with [`StackOptions::stripe`].
    pub stripe: Option<mercato_stripe::testing::LocalStripe>,
    /// The broker namespace the services share (queues are `<namespace>.<service>.<consumer>`).
    pub namespace: String,
    /// The BFF's gRPC address.
    pub bff_addr: SocketAddr,
    /// The BFF's HTTP side (probes and `/metrics`), as its `main` serves it.
    pub bff_http_addr: SocketAddr,
    bff_stop: CancellationToken,
    bff_task: tokio::task::JoinHandle<()>,
    // The resources outlive the services (fields drop in declaration order).
    _redis: TestRedis,
    process_env: mercato_process::testing::TestEnv,
    payment_env: mercato_payment::testing::TestEnv,
    order_env: mercato_order::testing::TestEnv,
    product_env: mercato_product::testing::TestEnv,
    user_env: mercato_user::testing::TestEnv,
}

impl Stack {
    /// Starts everything, each service on port 0 and fresh resources.
    pub async fn start(options: StackOptions) -> Self {
        let stripe = if options.stripe {
            Some(mercato_stripe::testing::LocalStripe::start().await)
        } else {
            None
        };
        let user_env = mercato_user::testing::TestEnv::new()
            .await
            .expect("user resources");
        let users = user_env.start(|_| {}).await.expect("user service starts");
        let product_env = mercato_product::testing::TestEnv::new()
            .await
            .expect("product resources");
        let products = product_env
            .start(|_| {})
            .await
            .expect("product service starts");
        let namespace = product_env.broker().namespace().to_owned();
        let order_env = mercato_order::testing::TestEnv::new(products.grpc_uri())
            .await
            .expect("order resources");
        let order_namespace = namespace.clone();
        let orders = order_env
            .start(|settings| settings.bus_namespace = order_namespace)
            .await
            .expect("order service starts");
        let payment_env = mercato_payment::testing::TestEnv::new(orders.grpc_uri())
            .await
            .expect("payment resources");
        let payment_namespace = namespace.clone();
        let stripe_url = stripe
            .as_ref()
            .map(mercato_stripe::testing::LocalStripe::base_url);
        let payments = payment_env
            .start(|settings| {
                settings.bus_namespace = payment_namespace;
                if let Some(base_url) = stripe_url {
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
                    Some(&["payment_intent.succeeded", "payment_intent.payment_failed"]),
                )
                .await;
        }
        let process_env =
            mercato_process::testing::TestEnv::new(orders.grpc_uri(), products.grpc_uri())
                .await
                .expect("process resources");
        let process = process_env
            .start(|settings| {
                settings.bus_namespace = namespace.clone();
                settings.fulfilment.carrier = mercato_process::settings::CarrierMode::Simulated;
                settings.fulfilment.shipment_delay = Duration::from_millis(100);
            })
            .await
            .expect("process service starts");

        let redis = TestRedis::new().expect("a redis prefix");
        let mut pairs = vec![
            ("REDIS_URL".to_owned(), redis.url().to_owned()),
            ("REDIS_KEY_PREFIX".to_owned(), redis.prefix().to_owned()),
            ("USER_SERVICE_URL".to_owned(), users.grpc_uri()),
            ("PRODUCT_SERVICE_URL".to_owned(), products.grpc_uri()),
            ("ORDER_SERVICE_URL".to_owned(), orders.grpc_uri()),
            ("PAYMENT_SERVICE_URL".to_owned(), payments.grpc_uri()),
            ("PROCESS_SERVICE_URL".to_owned(), process.grpc_uri()),
            ("ISSUER".to_owned(), format!("http://{}", users.http_addr)),
        ];
        if stripe.is_some() {
            pairs.push((
                "STRIPE_PUBLISHABLE_KEY".to_owned(),
                "pk_test_mercato".to_owned(),
            ));
        }
        for (key, value) in options.bff_settings {
            pairs.retain(|(existing, _)| existing != key);
            pairs.push(((*key).to_owned(), (*value).to_owned()));
        }
        let settings = BffSettings::from_source(&EnvSource::from_pairs(
            pairs
                .into_iter()
                .map(|(key, value)| (format!("MERCATO_BFF__{key}"), value)),
        ))
        .expect("bff settings");

        let bff_stop = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the bff");
        let http_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the bff's http side");
        let bff_http_addr = http_listener.local_addr().expect("bff http address");
        let application = Application::build(settings, listener).expect("the bff builds");
        let bff_addr = application.local_addr();
        let readiness = mercato_platform::http::Readiness::new(bff_stop.clone());
        let stopped = bff_stop.clone();
        let http_stopped = bff_stop.clone();
        let bff_task = tokio::spawn(async move {
            let grpc = application.run_until(stopped.cancelled_owned());
            let http = mercato_platform::http::serve(
                http_listener,
                mercato_platform::http::router(readiness),
                http_stopped.cancelled_owned(),
            );
            let (grpc, http) = tokio::join!(grpc, http);
            grpc.expect("the bff serves");
            http.expect("the bff's http side serves");
        });

        Self {
            users,
            products,
            orders,
            payments,
            process,
            stripe,
            namespace,
            bff_addr,
            bff_http_addr,
            bff_stop,
            bff_task,
            _redis: redis,
            process_env,
            payment_env,
            order_env,
            product_env,
            user_env,
        }
    }

    /// A channel to the BFF.
    pub async fn bff_channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.bff_addr))
            .expect("bff url")
            .connect()
            .await
            .expect("the bff accepts connections")
    }

    /// The BFF's clients.
    pub async fn shop(&self) -> Shop {
        Shop::new(self.bff_channel().await)
    }

    /// The order service's database name (the outbox series' `database` label).
    pub fn order_database(&self) -> String {
        self.order_env.database().name().to_owned()
    }

    /// The payment service's database name.
    pub fn payment_database(&self) -> String {
        self.payment_env.database().name().to_owned()
    }

    /// The database URL of `service`: `user`, `product`, `order`, `payment` or `process` (for
    /// tools that read a service's database as an operator would, e.g. `psql`, `pgbench`).
    pub fn database_url(&self, service: &str) -> String {
        let database = match service {
            "user" => self.user_env.database(),
            "product" => self.product_env.database(),
            "order" => self.order_env.database(),
            "payment" => self.payment_env.database(),
            "process" => self.process_env.database(),
            other => panic!("the stack has no {other} service"),
        };
        database.url().to_owned()
    }

    /// The queue of `consumer` of `service` in this stack's namespace.
    pub fn queue(&self, service: &str, consumer: &str) -> String {
        format!("{}.{service}.{consumer}", self.namespace)
    }

    /// Every HTTP side, named: `bff`, `user`, `product`, `order`, `payment`, `process`.
    pub fn http_sides(&self) -> Vec<(&'static str, SocketAddr)> {
        vec![
            ("bff", self.bff_http_addr),
            ("user", self.users.http_addr),
            ("product", self.products.http_addr),
            ("order", self.orders.http_addr),
            ("payment", self.payments.http_addr),
            ("process", self.process.http_addr),
        ]
    }

    /// Stops every part, checking each stops cleanly: the BFF, then the callers before those
    /// they call.
    pub async fn stop(self) {
        self.bff_stop.cancel();
        self.bff_task.await.expect("the bff stops cleanly");
        self.process
            .stop()
            .await
            .expect("process service stops cleanly");
        self.payments
            .stop()
            .await
            .expect("payment service stops cleanly");
        self.orders
            .stop()
            .await
            .expect("order service stops cleanly");
        self.products
            .stop()
            .await
            .expect("product service stops cleanly");
        self.users.stop().await.expect("user service stops cleanly");
        drop(self.stripe);
    }
}

/// `GET http://{addr}{path}`: the status and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    mercato_bff::app::install_crypto_provider();
    let response = reqwest::get(format!("http://{addr}{path}"))
        .await
        .unwrap_or_else(|error| panic!("GET {path} on {addr}: {error}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
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

/// JPY in minor units.
pub fn jpy(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

/// The BFF's rate limits lifted: load generators and availability tests drive far more calls
/// from one address than a shopper's budget (keys without the `MERCATO_BFF__` prefix).
pub const UNLIMITED_RATE_LIMITS: &[(&str, &str)] = &[
    ("RATE_LIMIT_READ_REQUESTS", "100000000"),
    ("RATE_LIMIT_READ_BURST", "100000000"),
    ("RATE_LIMIT_AUTH_REQUESTS", "100000000"),
    ("RATE_LIMIT_AUTH_BURST", "100000000"),
    ("RATE_LIMIT_WRITE_REQUESTS", "100000000"),
    ("RATE_LIMIT_WRITE_BURST", "100000000"),
];

/// Checking out the whole cart to [`shipping_address`] with `method`, expecting `total` JPY, under
/// a fresh idempotency key.
pub fn cart_checkout(method: common::PaymentMethod, total: i64) -> bff::CreateOrderRequest {
    bff::CreateOrderRequest {
        idempotency_key: Uuid::new_v4().to_string(),
        source: Some(bff::create_order_request::Source::Cart(
            bff::CartCheckout {},
        )),
        shipping_address: Some(shipping_address()),
        payment_method: method.into(),
        user_coupon_id: String::new(),
        expected_total: jpy(total),
    }
}

/// A Japanese shipping address in normal form.
pub fn shipping_address() -> common::PostalAddress {
    common::PostalAddress {
        recipient_name: "Shopper".to_owned(),
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

/// A published product with one active SKU priced [`SKU_PRICE`] and `on_hand` units, created on
/// the product service by a seller; the SKU id.
pub async fn seed_sku(product_uri: &str, on_hand: i64) -> String {
    let channel = Channel::from_shared(product_uri.to_owned())
        .expect("product uri")
        .connect_lazy();
    let seller = Principal::new(Uuid::new_v4(), [Role::Seller]);
    let as_seller = |message| {
        let mut request = Request::new(message);
        seller.write_metadata(request.metadata_mut());
        request
    };
    let mut products = product::product_service_client::ProductServiceClient::new(channel.clone());
    let created = products
        .create_product(as_seller(product::CreateProductRequest {
            product: Some(product::Product {
                name: "Trace mug".to_owned(),
                category: "kitchen".to_owned(),
                skus: vec![product::Sku {
                    sku_code: format!("MUG-{}", Uuid::new_v4().simple()),
                    price: jpy(SKU_PRICE),
                    active: true,
                    ..product::Sku::default()
                }],
                ..product::Product::default()
            }),
            idempotency_key: Uuid::new_v4().to_string(),
            seller_id: String::new(),
        }))
        .await
        .expect("product created")
        .into_inner()
        .product
        .expect("product");
    let sku_id = created.skus[0].sku_id.clone();
    let mut publish = Request::new(product::PublishProductRequest {
        product_id: created.product_id,
    });
    seller.write_metadata(publish.metadata_mut());
    products.publish_product(publish).await.expect("published");
    let mut stock = product::stock_service_client::StockServiceClient::new(channel);
    let mut get = Request::new(product::GetStockRequest {
        sku_id: sku_id.clone(),
    });
    seller.write_metadata(get.metadata_mut());
    let version = stock
        .get_stock(get)
        .await
        .expect("stock")
        .into_inner()
        .stock
        .expect("stock level")
        .version;
    let mut adjust = Request::new(product::AdjustStockRequest {
        sku_id: sku_id.clone(),
        on_hand,
        expected_version: version,
        reason: "e2e test".to_owned(),
        idempotency_key: Uuid::new_v4().to_string(),
    });
    seller.write_metadata(adjust.metadata_mut());
    stock.adjust_stock(adjust).await.expect("stocked");
    sku_id
}

/// The status of a BFF order.
pub fn status_of(order: &bff::Order) -> common::OrderStatus {
    common::OrderStatus::try_from(order.status).expect("a known order status")
}

/// The BFF's clients on one channel.
#[derive(Debug, Clone)]
pub struct Shop {
    /// AuthService.
    pub auth: bff::auth_service_client::AuthServiceClient<Channel>,
    /// CartService.
    pub carts: bff::cart_service_client::CartServiceClient<Channel>,
    /// OrderService.
    pub orders: bff::order_service_client::OrderServiceClient<Channel>,
}

/// A signed-up shopper: e-mail and the tokens the BFF issued.
#[derive(Debug, Clone)]
pub struct Shopper {
    /// The account's e-mail.
    pub email: String,
    /// The access token of the last sign-in.
    pub access_token: String,
    /// The refresh token of the last sign-in.
    pub refresh_token: String,
}

impl Shop {
    /// Clients on `channel`.
    pub fn new(channel: Channel) -> Self {
        Self {
            auth: bff::auth_service_client::AuthServiceClient::new(channel.clone()),
            carts: bff::cart_service_client::CartServiceClient::new(channel.clone()),
            orders: bff::order_service_client::OrderServiceClient::new(channel),
        }
    }

    /// Registers a fresh shopper with [`PASSWORD`], then signs in again as the storefront does
    /// after a reload.
    pub async fn sign_up(&mut self) -> Shopper {
        let email = format!("shopper-{}@example.com", Uuid::new_v4().simple());
        self.auth
            .register(bff::RegisterRequest {
                email: email.clone(),
                password: PASSWORD.to_owned(),
                display_name: "Shopper".to_owned(),
            })
            .await
            .expect("registered");
        let tokens = self
            .auth
            .login(bff::LoginRequest {
                email: email.clone(),
                password: PASSWORD.to_owned(),
            })
            .await
            .expect("signed in")
            .into_inner()
            .tokens
            .expect("tokens");
        Shopper {
            email,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        }
    }

    /// Puts `quantity` of `sku` in the cart and checks the cart out with `method`: the order
    /// and the `x-trace-id` the BFF answered with.
    pub async fn checkout(
        &mut self,
        shopper: &Shopper,
        sku: &str,
        quantity: i64,
        method: common::PaymentMethod,
    ) -> (bff::Order, String) {
        self.carts
            .add_cart_item(with_token(
                bff::AddCartItemRequest {
                    sku_id: sku.to_owned(),
                    quantity,
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &shopper.access_token,
            ))
            .await
            .expect("added to the cart");
        let response = self
            .orders
            .create_order(with_token(
                cart_checkout(method, quantity * SKU_PRICE),
                &shopper.access_token,
            ))
            .await
            .expect("checkout");
        let trace_id = response
            .metadata()
            .get("x-trace-id")
            .expect("the checkout answer carries x-trace-id")
            .to_str()
            .expect("an ascii trace id")
            .to_owned();
        let order = response.into_inner().order.expect("order");
        (order, trace_id)
    }

    /// The order once it is `want`, watched through `WatchOrder` (a watch the BFF ends with
    /// UNAVAILABLE is started again, as the storefront does).
    pub async fn watch_until(
        &mut self,
        shopper: &Shopper,
        order_id: &str,
        want: common::OrderStatus,
    ) -> bff::Order {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let mut stream = self
                .orders
                .watch_order(with_token(
                    bff::WatchOrderRequest {
                        order_id: order_id.to_owned(),
                    },
                    &shopper.access_token,
                ))
                .await
                .expect("watch starts")
                .into_inner();
            loop {
                let message = tokio::time::timeout_at(deadline, stream.message())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("order {order_id} went through {seen:?}, never {want:?}")
                    });
                match message {
                    Ok(Some(bff::WatchOrderResponse { order: Some(order) })) => {
                        let status = status_of(&order);
                        seen.push(status);
                        if status == want {
                            return order;
                        }
                    }
                    Ok(None) => panic!("order {order_id} ended after {seen:?}, never {want:?}"),
                    Ok(Some(bff::WatchOrderResponse { order: None })) => {
                        panic!("a watch message without its order")
                    }
                    Err(status) if status.code() == Code::Unavailable => break,
                    Err(status) => panic!("the watch failed: {status:?}"),
                }
            }
        }
    }

    /// The order's payment through `GetOrderPayment`, once the payment service attached it.
    pub async fn payment(&mut self, shopper: &Shopper, order_id: &str) -> bff::Payment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let answer = self
                .orders
                .get_order_payment(with_token(
                    bff::GetOrderPaymentRequest {
                        order_id: order_id.to_owned(),
                    },
                    &shopper.access_token,
                ))
                .await;
            match answer {
                Ok(response) => return response.into_inner().payment.expect("payment"),
                Err(status) if status.code() == Code::FailedPrecondition => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "order {order_id} never got a payment"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("reading the payment failed: {status:?}"),
            }
        }
    }
}

/// What a browser does on the sandbox page: loads it, finds the form whose button says
/// `button` and posts it; the HTTP status of the post.
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

/// A backend service of the [`ScaledStack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The user service.
    User,
    /// The product service.
    Product,
    /// The order service.
    Order,
    /// The payment service.
    Payment,
    /// The process service.
    Process,
}

impl Backend {
    /// Every backend, callees before their callers.
    pub const ALL: [Self; 5] = [
        Self::User,
        Self::Product,
        Self::Order,
        Self::Payment,
        Self::Process,
    ];

    /// The service's name (`user`, `product`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Product => "product",
            Self::Order => "order",
            Self::Payment => "payment",
            Self::Process => "process",
        }
    }
}

/// One running replica: its addresses and the shutdown SIGTERM would trigger in its `main`.
#[derive(Debug)]
pub struct Replica {
    /// gRPC address (a replacement takes the same one, as a restarted pod keeps its name).
    pub grpc_addr: SocketAddr,
    /// HTTP address (probes).
    pub http_addr: SocketAddr,
    shutdown: mercato_platform::shutdown::Shutdown,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Replica {
    /// Triggers the replica's shutdown — what its `main` does on SIGTERM
    /// (`Shutdown::listen_for_signals`) — and waits until it has drained and exited.
    pub async fn stop(self) -> Result<(), String> {
        self.shutdown.trigger();
        self.task.await.map_err(|join| join.to_string())?
    }
}

/// The system with two replicas of every backend service, as the Kubernetes manifests run it:
/// both replicas of a service share its database, Redis prefix and broker namespace (competing
/// consumers on the same queues, any number of outbox relays). Callers — the BFF and the
/// services calling each other — reach the product and order replicas through one
/// [`ServiceAddress`] each, as through a Kubernetes Service, and list the replicas of the other
/// services in their `*_SERVICE_URL`, so both shapes are exercised. Every replica runs with
/// [`SHUTDOWN_DELAY`]. A replica is replaced in place with [`ScaledStack::stop_replica`] and
/// [`ScaledStack::replace`]: the old one drains, a fresh one starts on the same addresses.
#[derive(Debug)]
pub struct ScaledStack {
    /// The broker namespace the order, product, payment and process services share.
    pub namespace: String,
    /// The BFF's gRPC address.
    pub bff_addr: SocketAddr,
    replicas: Vec<(Backend, [Option<Replica>; 2])>,
    /// Replicas stopped and not yet replaced, with the addresses their replacements take.
    stopped: Vec<(Backend, usize, SocketAddr, SocketAddr)>,
    bff_stop: CancellationToken,
    bff_task: tokio::task::JoinHandle<()>,
    /// The Service addresses of the backends in [`BEHIND_ONE_ADDRESS`].
    addresses: Vec<(Backend, ServiceAddress)>,
    // The resources outlive the replicas (fields drop in declaration order).
    _redis: TestRedis,
    envs: Envs,
}

/// The backends callers reach through one Service address (the ones the Kubernetes manifests
/// scale with a HorizontalPodAutoscaler); the others are listed replica by replica.
pub const BEHIND_ONE_ADDRESS: [Backend; 2] = [Backend::Product, Backend::Order];

/// How long after a replica's shutdown begins its Service address stops routing to it, as
/// Kubernetes endpoints follow readiness with a lag.
pub const ROUTING_LAG: Duration = Duration::from_millis(100);

/// Every replica's `SHUTDOWN_DELAY`: longer than [`ROUTING_LAG`], so no new connection reaches
/// a closed port.
pub const SHUTDOWN_DELAY: Duration = Duration::from_millis(300);

/// The resources every replica of a service shares, and how to start one.
#[derive(Debug)]
struct Envs {
    process: mercato_process::testing::TestEnv,
    payment: mercato_payment::testing::TestEnv,
    order: mercato_order::testing::TestEnv,
    product: mercato_product::testing::TestEnv,
    user: mercato_user::testing::TestEnv,
    /// The broker namespace of the order, product, payment and process services.
    namespace: String,
    /// The user service's issuer (both replicas sign with it).
    issuer_http_addr: SocketAddr,
}

impl ScaledStack {
    /// Two replicas of each backend and the BFF with `bff_settings` added or overridden (keys
    /// without the `MERCATO_BFF__` prefix), every listener first bound on port 0.
    pub async fn start(bff_settings: &[(&str, &str)]) -> Self {
        let mut slots = Vec::new();
        for backend in Backend::ALL {
            let mut pair = Vec::new();
            for _ in 0..2 {
                let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
                pair.push((bind(any_port).await, bind(any_port).await));
            }
            slots.push((backend, pair));
        }
        let mut addresses = Vec::new();
        for (backend, pair) in &slots {
            if BEHIND_ONE_ADDRESS.contains(backend) {
                let endpoints = pair
                    .iter()
                    .map(|(grpc, _)| grpc.local_addr().expect("bound"));
                let address = ServiceAddress::start(endpoints)
                    .await
                    .expect("a service address");
                addresses.push((*backend, address));
            }
        }
        let urls = |backend: Backend| {
            if let Some((_, address)) = addresses.iter().find(|(each, _)| *each == backend) {
                return address.uri();
            }
            slots
                .iter()
                .find(|(each, _)| *each == backend)
                .map(|(_, pair)| {
                    pair.iter()
                        .map(|(grpc, _)| format!("http://{}", grpc.local_addr().expect("bound")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .expect("every backend has slots")
        };
        let user_env = mercato_user::testing::TestEnv::new()
            .await
            .expect("user resources");
        let product_env = mercato_product::testing::TestEnv::new()
            .await
            .expect("product resources");
        let namespace = product_env.broker().namespace().to_owned();
        let order_env = mercato_order::testing::TestEnv::new(urls(Backend::Product))
            .await
            .expect("order resources");
        let payment_env = mercato_payment::testing::TestEnv::new(urls(Backend::Order))
            .await
            .expect("payment resources");
        let process_env =
            mercato_process::testing::TestEnv::new(urls(Backend::Order), urls(Backend::Product))
                .await
                .expect("process resources");
        let issuer_http_addr = slots[0].1[0].1.local_addr().expect("bound");
        let redis = TestRedis::new().expect("a redis prefix");
        let mut pairs = vec![
            ("REDIS_URL".to_owned(), redis.url().to_owned()),
            ("REDIS_KEY_PREFIX".to_owned(), redis.prefix().to_owned()),
            ("USER_SERVICE_URL".to_owned(), urls(Backend::User)),
            ("PRODUCT_SERVICE_URL".to_owned(), urls(Backend::Product)),
            ("ORDER_SERVICE_URL".to_owned(), urls(Backend::Order)),
            ("PAYMENT_SERVICE_URL".to_owned(), urls(Backend::Payment)),
            ("PROCESS_SERVICE_URL".to_owned(), urls(Backend::Process)),
            ("ISSUER".to_owned(), format!("http://{issuer_http_addr}")),
        ];
        for (key, value) in bff_settings {
            pairs.retain(|(existing, _)| existing != key);
            pairs.push(((*key).to_owned(), (*value).to_owned()));
        }
        let envs = Envs {
            process: process_env,
            payment: payment_env,
            order: order_env,
            product: product_env,
            user: user_env,
            namespace: namespace.clone(),
            issuer_http_addr,
        };
        let mut replicas = Vec::new();
        for (backend, pair) in slots {
            let mut running = [None, None];
            for (slot, (grpc, http)) in pair.into_iter().enumerate() {
                running[slot] = Some(envs.start_replica(backend, grpc, http).await);
            }
            replicas.push((backend, running));
        }
        for (backend, pair) in &replicas {
            for replica in pair.iter().flatten() {
                wait_ready(*backend, replica).await;
            }
        }

        let settings = BffSettings::from_source(&EnvSource::from_pairs(
            pairs
                .into_iter()
                .map(|(key, value)| (format!("MERCATO_BFF__{key}"), value)),
        ))
        .expect("bff settings");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the bff");
        let application = Application::build(settings, listener).expect("the bff builds");
        let bff_addr = application.local_addr();
        let bff_stop = CancellationToken::new();
        let stopped = bff_stop.clone();
        let bff_task = tokio::spawn(async move {
            application
                .run_until(stopped.cancelled_owned())
                .await
                .expect("the bff serves");
        });
        Self {
            namespace,
            bff_addr,
            replicas,
            stopped: Vec::new(),
            bff_stop,
            bff_task,
            addresses,
            _redis: redis,
            envs,
        }
    }

    /// The BFF's clients.
    pub async fn shop(&self) -> Shop {
        Shop::new(
            Channel::from_shared(format!("http://{}", self.bff_addr))
                .expect("bff url")
                .connect()
                .await
                .expect("the bff accepts connections"),
        )
    }

    /// `http://<grpc addr>` of replica `slot` (0 or 1) of `backend`.
    pub fn grpc_uri(&self, backend: Backend, slot: usize) -> String {
        format!("http://{}", self.replica(backend, slot).grpc_addr)
    }

    /// The database URL of `backend` (both replicas use it).
    pub fn database_url(&self, backend: Backend) -> String {
        let database = match backend {
            Backend::User => self.envs.user.database(),
            Backend::Product => self.envs.product.database(),
            Backend::Order => self.envs.order.database(),
            Backend::Payment => self.envs.payment.database(),
            Backend::Process => self.envs.process.database(),
        };
        database.url().to_owned()
    }

    /// The queue of `consumer` of `service` in the shared namespace.
    pub fn queue(&self, service: &str, consumer: &str) -> String {
        format!("{}.{service}.{consumer}", self.namespace)
    }

    /// Stops replica `slot` of `backend` through the path SIGTERM takes in its `main`
    /// (readiness and health go not-ready, it serves on for its shutdown delay, the listener
    /// closes, in-flight calls, consumers and the outbox relay finish within the grace period)
    /// and waits until it has exited; behind a Service address, the address stops routing to it
    /// [`ROUTING_LAG`] after the shutdown began. The other replica serves on alone until
    /// [`replace`](Self::replace).
    pub async fn stop_replica(&mut self, backend: Backend, slot: usize) {
        let old = self
            .slot(backend, slot)
            .take()
            .unwrap_or_else(|| panic!("{} replica {slot} is running", backend.name()));
        self.stopped
            .push((backend, slot, old.grpc_addr, old.http_addr));
        if let Some(address) = self.address(backend) {
            old.shutdown.trigger();
            tokio::time::sleep(ROUTING_LAG).await;
            address.remove(old.grpc_addr);
        }
        old.stop().await.unwrap_or_else(|error| {
            panic!("{} replica {slot} stops cleanly: {error}", backend.name())
        });
    }

    /// Starts a fresh replica in the place of the stopped replica `slot` of `backend`, on the
    /// same addresses (as a restarted pod keeps its name), and waits until it is ready, as a
    /// rolling update waits for the new pod.
    pub async fn replace(&mut self, backend: Backend, slot: usize) {
        let position = self
            .stopped
            .iter()
            .position(|(each, stopped, _, _)| *each == backend && *stopped == slot)
            .unwrap_or_else(|| panic!("{} replica {slot} was stopped", backend.name()));
        let (_, _, grpc_addr, http_addr) = self.stopped.remove(position);
        let replica = self
            .envs
            .start_replica(backend, bind(grpc_addr).await, bind(http_addr).await)
            .await;
        wait_ready(backend, &replica).await;
        if let Some(address) = self.address(backend) {
            address.add(replica.grpc_addr);
        }
        *self.slot(backend, slot) = Some(replica);
    }

    fn address(&self, backend: Backend) -> Option<&ServiceAddress> {
        self.addresses
            .iter()
            .find(|(each, _)| *each == backend)
            .map(|(_, address)| address)
    }

    /// How many connections the Service addresses accepted but could not deliver (no replica
    /// in rotation, or one whose port was closed).
    pub fn connections_turned_away(&self) -> usize {
        self.addresses
            .iter()
            .map(|(_, address)| address.turned_away())
            .sum()
    }

    fn slot(&mut self, backend: Backend, slot: usize) -> &mut Option<Replica> {
        self.replicas
            .iter_mut()
            .find(|(each, _)| *each == backend)
            .map(|(_, pair)| &mut pair[slot])
            .unwrap_or_else(|| panic!("the stack runs no {} service", backend.name()))
    }

    /// Stops the BFF, then every replica (callers before those they call), each cleanly.
    pub async fn stop(mut self) {
        self.bff_stop.cancel();
        (&mut self.bff_task).await.expect("the bff stops cleanly");
        for (backend, pair) in self.replicas.drain(..).rev() {
            for (slot, replica) in pair.into_iter().enumerate() {
                if let Some(replica) = replica {
                    replica.stop().await.unwrap_or_else(|error| {
                        panic!("{} replica {slot} stops cleanly: {error}", backend.name())
                    });
                }
            }
        }
    }

    /// Every dead-letter queue the replicas declared and how many messages it holds (the
    /// queues stay tracked for deletion with the test's broker namespaces).
    pub async fn dead_letters(&self) -> Vec<(String, u32)> {
        let mut counts = Vec::new();
        for broker in [self.envs.user.broker(), self.envs.product.broker()] {
            let queues = mercato_messaging::topology::take_declared_queues(broker.namespace());
            for queue in &queues {
                broker.track_queue(queue.clone());
            }
            let connection = broker.connect().await.expect("a broker connection");
            let channel = connection.create_channel().await.expect("a broker channel");
            for queue in queues.iter().filter(|queue| queue.ends_with(".dlq")) {
                let declared = channel
                    .queue_declare(
                        queue.as_str().into(),
                        lapin::options::QueueDeclareOptions {
                            passive: true,
                            ..lapin::options::QueueDeclareOptions::default()
                        },
                        lapin::types::FieldTable::default(),
                    )
                    .await
                    .unwrap_or_else(|error| panic!("dead-letter queue {queue}: {error}"));
                counts.push((queue.clone(), declared.message_count()));
            }
            connection.close(0, "counted".into()).await.ok();
        }
        counts
    }

    fn replica(&self, backend: Backend, slot: usize) -> &Replica {
        self.replicas
            .iter()
            .find(|(each, _)| *each == backend)
            .and_then(|(_, pair)| pair[slot].as_ref())
            .unwrap_or_else(|| panic!("{} replica {slot} is running", backend.name()))
    }
}

/// Builds a service's `Application` and runs it on a task of its own: its shutdown handle and
/// the task, or why it did not build.
macro_rules! run_replica {
    ($build:expr) => {
        $build
            .await
            .map(|application| {
                let shutdown = application.shutdown();
                let task = tokio::spawn(async move {
                    application.run().await.map_err(|error| error.to_string())
                });
                (shutdown, task)
            })
            .map_err(|error| error.to_string())
    };
}

impl Envs {
    /// Starts a replica of `backend` on the given listeners.
    async fn start_replica(
        &self,
        backend: Backend,
        grpc_listener: TcpListener,
        http_listener: TcpListener,
    ) -> Replica {
        let grpc_addr = grpc_listener.local_addr().expect("bound");
        let http_addr = http_listener.local_addr().expect("bound");
        let namespace = self.namespace.clone();
        let built = match backend {
            Backend::User => {
                let mut settings = mercato_user::testing::test_settings(
                    &self.user.resources(),
                    self.issuer_http_addr,
                );
                settings.database.max_connections = REPLICA_POOL;
                settings.common.shutdown_delay = SHUTDOWN_DELAY;
                run_replica!(mercato_user::Application::build(
                    settings,
                    grpc_listener,
                    http_listener
                ))
            }
            Backend::Product => {
                let mut settings =
                    mercato_product::testing::test_settings(&self.product.resources());
                settings.common.shutdown_delay = SHUTDOWN_DELAY;
                run_replica!(mercato_product::Application::build(
                    settings,
                    grpc_listener,
                    http_listener
                ))
            }
            Backend::Order => {
                let mut settings = mercato_order::testing::test_settings(&self.order.resources());
                settings.bus_namespace = namespace;
                settings.common.shutdown_delay = SHUTDOWN_DELAY;
                run_replica!(mercato_order::Application::build(
                    settings,
                    grpc_listener,
                    http_listener
                ))
            }
            Backend::Payment => {
                let mut settings =
                    mercato_payment::testing::test_settings(&self.payment.resources());
                settings.bus_namespace = namespace;
                settings.database.max_connections = REPLICA_POOL;
                settings.common.shutdown_delay = SHUTDOWN_DELAY;
                run_replica!(mercato_payment::Application::build(
                    settings,
                    grpc_listener,
                    http_listener
                ))
            }
            Backend::Process => {
                let settings = self.process.settings(|settings| {
                    settings.bus_namespace = namespace;
                    settings.fulfilment.carrier = mercato_process::settings::CarrierMode::Simulated;
                    settings.fulfilment.shipment_delay = Duration::from_millis(100);
                    settings.database.max_connections = REPLICA_POOL;
                    settings.common.shutdown_delay = SHUTDOWN_DELAY;
                });
                run_replica!(mercato_process::Application::build(
                    settings,
                    grpc_listener,
                    http_listener
                ))
            }
        };
        let (shutdown, task) =
            built.unwrap_or_else(|error| panic!("a {} replica starts: {error}", backend.name()));
        Replica {
            grpc_addr,
            http_addr,
            shutdown,
            task,
        }
    }
}

/// Pool size of each replica: ten replicas with the default pools would take every connection
/// the test server allows.
const REPLICA_POOL: std::num::NonZeroU32 = std::num::NonZeroU32::new(4).expect("four is not zero");

/// A listener on `addr`; a replacement may have to wait a moment for the address its
/// predecessor just released.
async fn bind(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%addr, %error, "address not free yet");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("binding {addr}: {error}"),
        }
    }
}

/// Waits until the replica's `/readyz` answers 200, as a rolling update waits for the new pod.
async fn wait_ready(backend: Backend, replica: &Replica) {
    mercato_bff::app::install_crypto_provider();
    let url = format!("http://{}/readyz", replica.http_addr);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(response) = reqwest::get(&url).await
            && response.status().is_success()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the {} replica on {} never became ready",
            backend.name(),
            replica.grpc_addr
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
