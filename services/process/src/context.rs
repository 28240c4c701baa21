//! What every part of the service shares: the pool, the clock, the bus, the settings and the
//! order and product service clients.

use std::sync::Arc;

use mercato_messaging::{Connector, Namespace};
use mercato_platform::clock::Clock;
use mercato_platform::grpc::ClientChannel;
use mercato_proto::mercato::order::v1::order_service_client::OrderServiceClient;
use mercato_proto::mercato::product::v1::stock_service_client::StockServiceClient;
use sqlx::PgPool;

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
}
