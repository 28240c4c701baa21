//! `mercato`, the operator CLI: the commands an operator runs against a live Mercato.
//!
//! | command | what it does | calls |
//! |---|---|---|
//! | `seed` | demo data: a seller and a shopper, products with SKUs and stock, published, a coupon and a campaign; a second run reports what exists | user `Register` / `GrantRole`, product `CreateProduct` / `CreateSku` / `PublishProduct`, stock `ListStockHistory` / `AdjustStock`, coupon `CreateCoupon` / `CreateCampaign` |
//! | `coupon create`, `campaign create` | a coupon definition, a first-come-first-served campaign | order `CouponService` |
//! | `order show <id>` | an order with its status history, its payment and its shipment | order `LookupOrder`, payment `LookupPayment`, process `GetShipment` |
//! | `dlq list`, `dlq replay` | a consumer's dead letters, and sending them back to that consumer | RabbitMQ, through [`mercato_messaging::dead_letters`] |
//! | `payments reconcile` | settles payments stuck unsettled from the provider now | payment `ReconcilePayments` |
//! | `keys list`, `keys rotate` | the token-signing keys, and a rotation | user `SigningKeyService` |
//!
//! # Trust: the CLI runs inside the cluster network
//!
//! The CLI talks to the internal services directly, not through the BFF, the way the services
//! talk to each other: over the platform's client channel ([`mercato_platform::grpc`]), which
//! names the caller `mercato-cli` in `x-mercato-caller`, and with every request carrying an
//! admin principal (`x-mercato-user-id` = the operator id, `x-mercato-roles` = `admin`; see
//! [`mercato_platform::principal`]). Internal services trust those headers as they are, because
//! only the cluster network reaches them and the BFF strips client copies at the edge. So:
//!
//! - the CLI must run where the services' gRPC ports are reachable (a pod or host inside the
//!   cluster network, like the services), never across the public edge;
//! - whoever can run it there is a shop operator: it asserts the admin role, and services that
//!   also accept internal callers (payment reconciliation, shipment and payment look-ups) see an
//!   internal service named `mercato-cli`;
//! - the operator id (`--operator-id`, `MERCATO_OPERATOR_ID`) is what services record as the
//!   acting admin (the actor of stock adjustments, the scope of idempotency keys); name your own
//!   admin account there so the records say who acted. Without it the fixed
//!   [`connect::DEFAULT_OPERATOR_ID`] is used. Services that record internal callers by name
//!   (the payment service) record `service:mercato-cli`.
//!
//! # Output and exit codes
//!
//! Results go to stdout, as a readable table or, with `--json`, as one JSON document. Progress of
//! long operations goes to stderr as plain lines (`seeded 40/100 products`). The exit code is 0
//! on success, 1 when a service refused or an operation failed (one line on stderr naming the
//! field or the cause, e.g. `error: CouponService.CreateCoupon refused: INVALID_ARGUMENT
//! VALIDATION_FAILED: coupon.fixed_discount.amount_minor: must be more than 0`), and 2 for a
//! usage error. Money is always integer minor units with a currency code.
//!
//! The library holds every command as a function ([`seed::run`], [`coupons::create_coupon`],
//! [`orders::show`], [`dlq::list`], …) returning typed results, plus [`execute`], which runs a
//! parsed [`Cli`] and renders its output; the `mercato` binary is a thin wrapper around it.

pub mod cli;
pub mod connect;
pub mod coupons;
pub mod dlq;
pub mod error;
pub mod keys;
pub mod orders;
pub mod payments;
pub mod progress;
pub mod render;
pub mod seed;

pub use cli::{Cli, Command, execute};
pub use connect::{BrokerArgs, Endpoints, Operator};
pub use error::{CliError, RpcError};
pub use progress::Progress;
