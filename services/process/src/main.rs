//! The process service binary: settings, telemetry, the `Application`, run until SIGTERM/SIGINT.

use mercato_platform::settings::EnvSource;
use mercato_platform::telemetry;
use mercato_process::{Application, Settings};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::read(&EnvSource::from_env())?;
    let telemetry = telemetry::init(&settings.common.telemetry)?;
    let grpc_listener = TcpListener::bind(settings.common.listen.grpc_addr).await?;
    let http_listener = TcpListener::bind(settings.common.listen.http_addr).await?;
    let application = Application::build(settings, grpc_listener, http_listener).await?;
    application.shutdown().listen_for_signals();
    let result = application.run().await;
    telemetry.shutdown().await;
    result?;
    Ok(())
}
