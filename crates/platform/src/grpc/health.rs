//! `grpc.health.v1` that knows about draining: tonic-health's service, except that `Watch`
//! streams end once the server is draining and the watcher has seen `NOT_SERVING`.
//!
//! A `Watch` stream otherwise never ends (it follows a `watch` channel whose sender lives as
//! long as the `HealthReporter`), and graceful shutdown waits for every open stream, so a single
//! client watching health would hold a draining server up until the grace period ran out.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::HealthService;

/// tonic-health's service with drain-aware `Watch` streams.
#[derive(Debug)]
pub(crate) struct DrainAwareHealth {
    inner: HealthService,
    draining: CancellationToken,
}

impl DrainAwareHealth {
    /// Serves the statuses of `reporter`; `draining` is cancelled after every status has been
    /// set to `NOT_SERVING`.
    pub(crate) fn new(
        reporter: tonic_health::server::HealthReporter,
        draining: CancellationToken,
    ) -> Self {
        Self {
            inner: HealthService::from_health_reporter(reporter),
            draining,
        }
    }
}

#[tonic::async_trait]
impl Health for DrainAwareHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = EndOnDrain<<HealthService as Health>::WatchStream>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream = self.inner.watch(request).await?.into_inner();
        Ok(Response::new(EndOnDrain {
            inner: stream,
            drained: Box::pin(self.draining.clone().cancelled_owned()),
            draining: false,
            last_not_serving: false,
            done: false,
        }))
    }
}

/// A health watch stream that ends after it delivered `NOT_SERVING` during a drain.
pub(crate) struct EndOnDrain<S> {
    inner: S,
    drained: Pin<Box<WaitForCancellationFutureOwned>>,
    draining: bool,
    last_not_serving: bool,
    done: bool,
}

impl<S> Stream for EndOnDrain<S>
where
    S: Stream<Item = Result<HealthCheckResponse, Status>> + Unpin,
{
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // Status updates first: the server sets NOT_SERVING *before* it cancels `drained`, so
        // the watcher always receives that last update before the stream ends.
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            if let Some(Ok(response)) = &item {
                self.last_not_serving = response.status == ServingStatus::NotServing as i32;
            }
            return Poll::Ready(item);
        }
        // No update pending. Registering interest in `drained` makes us wake when draining
        // starts; we end only if the watcher already saw NOT_SERVING (the update above).
        if !self.draining && self.drained.as_mut().poll(cx).is_ready() {
            self.draining = true;
        }
        if self.draining && self.last_not_serving {
            self.done = true;
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}
