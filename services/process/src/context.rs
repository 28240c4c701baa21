//! What every part of the service shares: the pool, the clock, the bus, the settings, the
//! order, product and user service clients and the notification sink.

use std::sync::Arc;

use mercato_messaging::{Connector, Namespace};
use mercato_platform::clock::Clock;
use mercato_platform::grpc::ClientChannel;
use mercato_proto::mercato::order::v1::order_service_client::OrderServiceClient;
use mercato_proto::mercato::product::v1::stock_service_client::StockServiceClient;
use mercato_proto::mercato::user::v1::user_service_client::UserServiceClient;
use sqlx::PgPool;

use crate::notifications::sink::Sink;
use crate::settings::Settings;

/// The shared context of the service's parts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProcessContext {
    /// The service's database.
    pub pool: PgPool,
    /// "Now" for shipment steps and notification times.
    pub clock: Clock,
    /// The broker connection.
    pub connector: Connector,
    /// The broker namespace (exchange and queue names).
    pub namespace: Namespace,
    /// Every setting.
    pub settings: Arc<Settings>,
    /// The order service (MarkOrderShipped, MarkOrderFinished, LookupOrder), connected lazily.
    pub orders: OrderServiceClient<ClientChannel>,
    /// The product service's stock (CommitReservation), connected lazily.
    pub stock: StockServiceClient<ClientChannel>,
    /// The user service (GetUser: the buyer's e-mail address for the SMTP sink), connected
    /// lazily, so it is never dialled with the log sink.
    pub users: UserServiceClient<ClientChannel>,
    /// Where notifications are delivered (`NOTIFIER`).
    pub notifier: Sink,
}
