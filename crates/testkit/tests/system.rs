//! `TestSystem` on the real servers: services start in-process on port 0, each on its own
//! database, find each other through their peers, answer gRPC, and stop on shutdown.

use std::time::Duration;

use mercato_platform::{
    grpc::{ChannelOptions, GrpcServer, ServerOptions, connect_lazy},
    settings::ServerLimits,
};
use mercato_testkit::{ServiceContext, TestService, TestSystem, system::ServiceError};
use sqlx::migrate::Migrator;
use tonic_health::pb::{HealthCheckRequest, health_check_response, health_client::HealthClient};

static NOTES: Migrator = sqlx::migrate!("tests/migrations");

async fn write_note(ctx: &ServiceContext, author: &str) -> Result<(), ServiceError> {
    sqlx::query("INSERT INTO notes (author) VALUES ($1)")
        .bind(author)
        .execute(&ctx.pool)
        .await?;
    Ok(())
}

/// Serves health and reflection (everything `GrpcServer` carries) until shutdown.
async fn serve(ctx: ServiceContext) -> Result<(), ServiceError> {
    let server = GrpcServer::new(ServerOptions::internal(ServerLimits::default()))?;
    server
        .serve(ctx.grpc_listener, ctx.shutdown.wait_owned())
        .await?;
    Ok(())
}

/// Writes its name into its own database, then serves.
struct Alpha;

impl TestService for Alpha {
    const NAME: &'static str = "alpha";

    fn migrators() -> Vec<&'static Migrator> {
        vec![&NOTES]
    }

    async fn run(ctx: ServiceContext) -> Result<(), ServiceError> {
        write_note(&ctx, Self::NAME).await?;
        serve(ctx).await
    }
}

/// Like [`Alpha`], and first calls alpha through its peer address, recording what it saw.
struct Beta;

impl TestService for Beta {
    const NAME: &'static str = "beta";

    fn migrators() -> Vec<&'static Migrator> {
        vec![&NOTES]
    }

    async fn run(ctx: ServiceContext) -> Result<(), ServiceError> {
        write_note(&ctx, Self::NAME).await?;
        let alpha = ctx.peers.uri("alpha").ok_or("beta runs without alpha")?;
        let channel = connect_lazy(&alpha, &ChannelOptions::new(Self::NAME))?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await?
            .into_inner()
            .status();
        write_note(&ctx, &format!("beta saw alpha {}", status.as_str_name())).await?;
        serve(ctx).await
    }
}

/// Fails at start-up.
struct Broken;

impl TestService for Broken {
    const NAME: &'static str = "broken";

    fn migrators() -> Vec<&'static Migrator> {
        vec![&NOTES]
    }

    async fn run(_ctx: ServiceContext) -> Result<(), ServiceError> {
        Err("the configured signing key is unreadable".into())
    }
}

async fn notes(system: &TestSystem, service: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT author FROM notes ORDER BY id")
        .fetch_all(system.pool(service))
        .await
        .expect("read notes")
}

async fn health(system: &TestSystem, service: &str) -> health_check_response::ServingStatus {
    system
        .client(service, HealthClient::new)
        .check(HealthCheckRequest::default())
        .await
        .expect("health check answers")
        .into_inner()
        .status()
}

#[tokio::test]
async fn services_start_in_process_with_their_own_databases_and_reach_each_other() {
    let system = TestSystem::builder()
        .with::<Alpha>()
        .with::<Beta>()
        .start()
        .await
        .expect("the system starts");

    assert_eq!(
        system.peers().names().collect::<Vec<_>>(),
        ["alpha", "beta"]
    );
    assert_eq!(
        health(&system, "alpha").await,
        health_check_response::ServingStatus::Serving
    );
    assert_eq!(
        health(&system, "beta").await,
        health_check_response::ServingStatus::Serving
    );
    // Beta wrote its notes before serving, so they are there once it answers.
    assert_eq!(notes(&system, "alpha").await, ["alpha"]);
    assert_eq!(
        notes(&system, "beta").await,
        ["beta", "beta saw alpha SERVING"],
        "beta's database holds only beta's rows, and beta reached alpha through its peer address"
    );
    assert_ne!(
        system.peers().addr("alpha"),
        system.peers().addr("beta"),
        "each service has its own port"
    );

    let alpha = system.peers().addr("alpha").expect("alpha address");
    system.shutdown().await.expect("services stop cleanly");
    assert!(
        tokio::net::TcpStream::connect(alpha).await.is_err(),
        "alpha's port is closed after shutdown"
    );
}

#[tokio::test]
async fn a_service_that_fails_to_start_is_reported_by_name() {
    let system = TestSystem::builder()
        .with::<Alpha>()
        .with::<Broken>()
        .start()
        .await
        .expect("the system starts");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !system.has_stopped("broken") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broken service never stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!system.has_stopped("alpha"), "alpha keeps running");

    let error = system
        .shutdown()
        .await
        .expect_err("the broken service's error is reported");
    assert!(
        error.contains("broken") && error.contains("signing key is unreadable"),
        "unexpected report: {error}"
    );
}

#[tokio::test]
async fn two_systems_never_share_databases_or_ports() {
    let first = TestSystem::builder()
        .with::<Alpha>()
        .start()
        .await
        .expect("first system");
    let second = TestSystem::builder()
        .with::<Alpha>()
        .start()
        .await
        .expect("second system");
    assert_eq!(
        health(&first, "alpha").await,
        health_check_response::ServingStatus::Serving
    );
    assert_eq!(
        health(&second, "alpha").await,
        health_check_response::ServingStatus::Serving
    );

    assert_ne!(first.peers().addr("alpha"), second.peers().addr("alpha"));
    assert_eq!(notes(&first, "alpha").await, ["alpha"]);
    assert_eq!(notes(&second, "alpha").await, ["alpha"]);
    assert_ne!(
        first.broker().namespace(),
        second.broker().namespace(),
        "each system has its own broker namespace"
    );
    assert_ne!(first.redis().prefix(), second.redis().prefix());
    first.shutdown().await.expect("first stops");
    second.shutdown().await.expect("second stops");
}
