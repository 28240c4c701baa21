//! The small HTTP side of every service: `/healthz` (the process is alive), `/readyz` (its
//! hard dependencies answer and it is not draining) and `/metrics` (the process's Prometheus
//! registry, see [`crate::metrics`]), served on the HTTP listener.
//!
//! Services merge their own routes (webhooks) into [`router`]'s result.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One named readiness probe (`postgres`, `rabbitmq`): `Ok` when the dependency answers, or a
/// short reason. The reason is shown on `/readyz`, so it must not contain secrets.
#[derive(Clone)]
pub struct ReadinessCheck {
    name: &'static str,
    probe: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl std::fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ReadinessCheck {
    /// A check called `name` that runs `probe` on every `/readyz`. The probe bounds its own time.
    pub fn new<F, Fut>(name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name,
            probe: Arc::new(move || Box::pin(probe())),
        }
    }

    /// The check's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs the probe once.
    pub async fn run(&self) -> Result<(), String> {
        (self.probe)().await
    }
}

/// What `/readyz` consults: the hard-dependency checks, and whether the service is draining
/// (a draining service is alive but must receive no new traffic).
#[derive(Debug, Clone)]
pub struct Readiness {
    checks: Vec<ReadinessCheck>,
    draining: CancellationToken,
}

impl Readiness {
    /// Not ready once `draining` is cancelled (pass `Shutdown::token()`).
    pub fn new(draining: CancellationToken) -> Self {
        Self {
            checks: Vec::new(),
            draining,
        }
    }

    /// Adds a hard-dependency check.
    #[must_use]
    pub fn with_check(mut self, check: ReadinessCheck) -> Self {
        self.checks.push(check);
        self
    }

    /// Runs every check concurrently; `(ready, body)`.
    pub async fn evaluate(&self) -> (bool, Value) {
        if self.draining.is_cancelled() {
            return (false, json!({ "status": "draining" }));
        }
        let results = futures::future::join_all(
            self.checks
                .iter()
                .map(|check| async move { (check.name(), check.run().await) }),
        )
        .await;
        let mut ready = true;
        let mut checks = Map::new();
        for (name, result) in results {
            let value = match result {
                Ok(()) => Value::from("ok"),
                Err(reason) => {
                    ready = false;
                    tracing::warn!(check = name, reason = %reason, "readiness check failed");
                    Value::from(reason)
                }
            };
            checks.insert(name.to_owned(), value);
        }
        let status = if ready { "ready" } else { "not ready" };
        (ready, json!({ "status": status, "checks": checks }))
    }
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(readiness))
        .merge(crate::metrics::router())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let (ready, body) = readiness.evaluate().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve<F>(listener: TcpListener, router: Router, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "http server listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
