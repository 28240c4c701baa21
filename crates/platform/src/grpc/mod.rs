//! gRPC plumbing shared by every service: the server builder with its tower stack, the client
//! channel builder, and W3C trace-context propagation through metadata.

mod client;
mod health;
mod limits;
mod replicas;
mod server;
pub(crate) mod trace;

pub use client::{
    ChannelError, ChannelOptions, ClientChannel, OutboundLayer, OutboundService, connect_lazy,
};
pub use limits::{ConcurrencyLimitLayer, ConcurrencyLimitService, TimeoutLayer, TimeoutService};
pub use replicas::{Backend, IDEMPOTENT_BY_ID, SET_ASIDE, never_processed, retryable};
pub use server::{GrpcServer, GrpcServerError, ServerOptions, ServerStack, finish_serving};
pub use trace::{
    HeaderExtractor, HeaderInjector, ServerTraceLayer, ServerTraceService, extract_context,
    inject_context,
};
