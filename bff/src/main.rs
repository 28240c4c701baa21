//! The BFF binary: loads settings, starts telemetry, serves gRPC/gRPC-Web and the HTTP probes
//! until SIGTERM/SIGINT, then drains and flushes telemetry.

use std::time::Duration;

use mercato_bff::{Application, BffSettings};
use mercato_platform::settings::EnvSource;
use mercato_platform::shutdown::Shutdown;
use mercato_platform::{http, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built without a TLS provider of its own (no aws-lc); JWKS over https needs one.
    mercato_bff::app::install_crypto_provider();
    let settings = BffSettings::from_source(&EnvSource::from_env())?;
    let telemetry = telemetry::init(&settings.common.telemetry)?;

    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    let grpc_listener = tokio::net::TcpListener::bind(settings.common.listen.grpc_addr).await?;
    let http_listener = tokio::net::TcpListener::bind(settings.common.listen.http_addr).await?;
    let readiness = http::Readiness::new(shutdown.token());
    let grace: Duration = settings.common.shutdown_grace;

    let app = Application::build(settings, grpc_listener)?;
    shutdown.spawn(app.run_until(shutdown.wait_owned()));
    shutdown.spawn(http::serve(
        http_listener,
        http::router(readiness),
        shutdown.wait_owned(),
    ));

    shutdown.cancelled().await;
    shutdown.drain(grace).await;
    telemetry.shutdown().await;
    Ok(())
}
