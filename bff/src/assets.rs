//! The storefront's files on the BFF's own port: a plain `GET`/`HEAD` that is not a gRPC or
//! gRPC-Web call is answered from the built SPA (`WEB_ROOT`, normally `bff/web/dist`), with
//! `index.html` for any path that is not a file, so the SPA's client-side routes load on reload.
//! Every gRPC call (always a `POST`) passes through untouched.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Method;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt as _};
use tower_http::services::{ServeDir, ServeFile};

type Files = ServeDir<ServeFile>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Serves the SPA in front of the gRPC stack; a no-op without a web root.
#[derive(Debug, Clone)]
pub struct AssetsLayer {
    files: Option<Files>,
}

impl AssetsLayer {
    /// Files from `root` (with `root/index.html` as the fallback), or nothing.
    pub fn new(root: Option<&Path>) -> Self {
        Self {
            files: root.map(|root| {
                ServeDir::new(root)
                    .append_index_html_on_directories(true)
                    .fallback(ServeFile::new(root.join("index.html")))
            }),
        }
    }
}

impl<S> Layer<S> for AssetsLayer {
    type Service = Assets<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Assets {
            inner,
            files: self.files.clone(),
        }
    }
}

/// See [`AssetsLayer`].
#[derive(Debug, Clone)]
pub struct Assets<S> {
    inner: S,
    files: Option<Files>,
}

/// Whether a request is a page or file load rather than an RPC.
fn is_asset_request<B>(request: &http::Request<B>) -> bool {
    let method = request.method();
    (method == Method::GET || method == Method::HEAD)
        && !request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"))
}

impl<S, B> Service<http::Request<B>> for Assets<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match &self.files {
            Some(files) if is_asset_request(&request) => {
                let files = files.clone();
                Box::pin(async move {
                    let response: Result<_, Infallible> = files.oneshot(request).await;
                    let Ok(response) = response;
                    Ok(response.map(Body::new))
                })
            }
            _ => {
                // The standard tower dance: the ready clone answers this call and the fresh one
                // stays for the next `poll_ready`.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(request))
            }
        }
    }
}
