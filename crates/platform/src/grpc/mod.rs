//! gRPC plumbing shared by every service: the server builder with its tower stack, the client
//! channel builder, and W3C trace-context propagation through metadata.

mod client;
mod health;
mod limits;
mod linger;
mod replicas;
mod server;
pub(crate) mod trace;

pub use client::{
    ChannelError, ChannelOptions, ClientChannel, OutboundLayer, OutboundService, connect_lazy,
};
pub use limits::{ConcurrencyLimitLayer, ConcurrencyLimitService, TimeoutLayer, TimeoutService};
pub use linger::{LINGER, Lingerers, Lingering, incoming};
pub use replicas::{ATTEMPTS, Backend, SET_ASIDE, never_sent};
pub use server::{GrpcServer, GrpcServerError, ServerOptions, ServerStack, finish_serving};
pub use trace::{
    HeaderExtractor, HeaderInjector, ServerTraceLayer, ServerTraceService, extract_context,
    inject_context,
};
