//! Logging and tracing set-up: `tracing` with JSON or human-readable logs, an OpenTelemetry
//! tracer bridged through `tracing-opentelemetry`, and OTLP export only when a collector is
//! configured.
//!
//! Decisions worth knowing:
//!
//! * **Spans always get OpenTelemetry ids**, collector or not. The SDK tracer provider is always
//!   installed; without `OTEL_EXPORTER_OTLP_ENDPOINT` it simply has no exporter, so nothing is
//!   sent and nothing complains, yet JSON logs still carry `trace_id`/`span_id`, trace context
//!   still propagates between services, and error correlation ids are trace ids.
//! * **The log filter does not filter spans.** `LOG_FILTER` applies to the log output only;
//!   spans at `info` and above always reach the tracer. Quieting logs must never break a trace.
//! * **W3C Trace Context** is installed as the global propagator (for libraries that use the
//!   global one); Mercato's own gRPC and AMQP helpers use it directly.

use std::fmt;
use std::io::IsTerminal as _;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::Id;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{self, FilterExt as _};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::FormatTime as _;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LogFormat, TelemetrySettings};

/// Instrumentation scope of the spans Mercato creates.
const SCOPE: &str = "mercato";

/// How long dropping the guard may block to flush spans.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint).
    #[error("failed to build the otlp span exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The log filter does not parse.
    #[error("invalid log filter")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
}

/// Keeps the tracer provider alive; flushes and shuts it down on [`shutdown`](Self::shutdown)
/// or drop, so the last spans of a process reach the collector.
#[derive(Debug)]
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// A guard that owns nothing (telemetry was already initialised by someone else).
    fn inactive() -> Self {
        Self { provider: None }
    }

    /// Flushes pending spans and shuts the exporter down.
    ///
    /// The SDK's shutdown blocks while the batch thread exports, and the OTLP client needs the
    /// Tokio runtime to make progress, so the blocking part runs on the blocking pool.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(err)) = result {
                tracing::warn!(error = %err, "telemetry shutdown failed");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Bounded: a collector that is down must not hold process exit hostage.
            let _ = provider.shutdown_with_timeout(FLUSH_TIMEOUT);
        }
    }
}

/// Initialises logging and tracing for the process, writing logs to stdout.
///
/// Must run inside a Tokio runtime when an OTLP endpoint is set (the exporter's gRPC channel
/// lives on it). Calling it again (tests, tools that embed services) is harmless: the second
/// call installs nothing and returns an inactive guard.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    if tracing::dispatcher::has_been_set() {
        return Ok(TelemetryGuard::inactive());
    }
    let provider = tracer_provider(settings)?;
    let subscriber = subscriber(settings, &provider, std::io::stdout)?;
    if subscriber.try_init().is_err() {
        // Lost a race with another initialiser; theirs stays, ours goes.
        return Ok(TelemetryGuard::inactive());
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    tracing::debug!(
        service = %settings.service_name,
        otlp_endpoint = settings.otlp_endpoint.as_ref().map(|e| e.as_str()),
        "telemetry initialised"
    );
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

/// The tracer provider for `settings`: with a batching OTLP/gRPC exporter when an endpoint is
/// set, with no exporter at all otherwise.
pub fn tracer_provider(settings: &TelemetrySettings) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.namespace", "mercato"))
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let builder = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.as_str())
                .with_timeout(Duration::from_secs(10))
                .build()?;
            builder.with_batch_exporter(exporter)
        }
        None => builder,
    };
    Ok(builder.build())
}

/// Library log sites that would print a message body: lapin's warning about a returned
/// (unroutable) publish logs the whole message, payload included, and event payloads carry
/// shoppers' data. The publisher reports the same case itself, by message id
/// (`mercato_messaging::Error::Unroutable`), so these are kept at `error` unless `LOG_FILTER`
/// names the target itself.
const PAYLOAD_LOGGING_TARGETS: &[&str] = &["lapin::returned_messages"];

/// `LOG_FILTER` as an event filter, with [`PAYLOAD_LOGGING_TARGETS`] held at `error`.
fn events_filter(log_filter: &str) -> Result<EnvFilter, TelemetryError> {
    let mut filter = EnvFilter::try_new(log_filter)?;
    for target in PAYLOAD_LOGGING_TARGETS {
        if !log_filter.contains(target) {
            filter = filter.add_directive(format!("{target}=error").parse()?);
        }
    }
    Ok(filter)
}

/// The full subscriber (tracer bridge, trace-id recorder, formatted logs to `writer`), for
/// `init` and for tests that install it with `tracing::subscriber::set_default`.
///
/// A test that installs it thread-locally should be alone in its test binary (or hit only call
/// sites no other test hits): `tracing` caches per call site, process-wide, whether it is
/// enabled, and a concurrent test without a subscriber can switch a shared call site off.
pub fn subscriber<W>(
    settings: &TelemetrySettings,
    provider: &SdkTracerProvider,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Events obey LOG_FILTER. Spans at info and above stay visible to the log layer whatever it
    // says: they are the traced spans, and a warning logged inside one must still carry its
    // trace id and fields even when LOG_FILTER=warn hides the span's own level.
    let log_filter = filter::filter_fn(|metadata| {
        metadata.is_span() && *metadata.level() <= tracing::Level::INFO
    })
    .or(events_filter(settings.log_filter.as_str())?);
    // Spans reach the tracer whatever the log filter says (see the module docs); the SDK's own
    // diagnostics are kept out of the tracer so exporting never produces spans about exporting.
    let span_filter = EnvFilter::try_new("info,opentelemetry=off,opentelemetry_sdk=off")?;
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };

    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SCOPE))
        .with_filter(span_filter);
    // Layered with `with`, not collected in a `Vec`: a `Vec` of layers does not pass
    // `on_register_dispatch` on, which `TraceIdLayer` depends on.
    let base = tracing_subscriber::registry()
        .with(otel)
        .with(TraceIdLayer::default());
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonFormat {
                service: settings.service_name.clone(),
            })
            .with_writer(writer)
            .with_filter(log_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(log_filter)
            .boxed()
    };
    Ok(base.with(logs))
}

/// The OpenTelemetry ids of a span, recorded once when the span is first entered.
#[derive(Debug, Clone)]
struct TraceIds {
    trace_id: String,
    span_id: String,
}

/// Records [`TraceIds`] in each span's extensions for the JSON formatter.
///
/// The ids live in `tracing-opentelemetry`'s private per-span data, reachable only through
/// `get_otel_context`, which needs the `Dispatch`; a formatter never gets one, so this layer
/// keeps the dispatch from registration and copies the ids out on the first enter. (Not at
/// creation: a span's parent may still be set between creation and first enter.)
#[derive(Default)]
struct TraceIdLayer {
    dispatch: OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl<S> Layer<S> for TraceIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        // Weak: the dispatch owns this layer, a strong reference would be a cycle.
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if span.extensions().get::<TraceIds>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(|weak| weak.upgrade()) else {
            return;
        };
        // Must not hold this span's extensions while asking: get_otel_context locks them.
        let Some(context) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
            return;
        };
        let otel_span = context.span();
        let span_context = otel_span.span_context();
        if span_context.is_valid() {
            span.extensions_mut().insert(TraceIds {
                trace_id: span_context.trace_id().to_string(),
                span_id: span_context.span_id().to_string(),
            });
        }
    }
}

/// One JSON object per event: span fields (root to leaf), then the event's own fields, then the
/// fixed keys `timestamp`, `level`, `target`, `service`, `span`, `trace_id`, `span_id`.
///
/// Flat, so `order.id` is searchable as is in any log store. `otel.*` bookkeeping fields are
/// left out; they only steer the tracer.
struct JsonFormat {
    service: String,
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut object = Map::new();
        let mut leaf = None;
        let mut ids = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields)
                {
                    object.extend(
                        fields
                            .into_iter()
                            .filter(|(key, _)| !key.starts_with("otel.")),
                    );
                }
                if let Some(found) = extensions.get::<TraceIds>() {
                    ids = Some(found.clone());
                }
                leaf = Some(span.name());
            }
        }
        event.record(&mut JsonVisitor(&mut object));

        let mut timestamp = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let metadata = event.metadata();
        object.insert("timestamp".into(), timestamp.into());
        object.insert("level".into(), metadata.level().as_str().into());
        object.insert("target".into(), metadata.target().into());
        object.insert("service".into(), self.service.clone().into());
        if let Some(leaf) = leaf {
            object.insert("span".into(), leaf.into());
        }
        if let Some(ids) = ids {
            object.insert("trace_id".into(), ids.trace_id.into());
            object.insert("span_id".into(), ids.span_id.into());
        }
        writeln!(writer, "{}", Value::Object(object))
    }
}

/// Collects an event's fields into a JSON object.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::*;
    use crate::settings::{LogFilter, OtlpEndpoint};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .expect("log buffer lock")
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn json_lines(captured: &Captured) -> Vec<Value> {
        let bytes = captured.0.lock().expect("log buffer lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8 logs")
            .lines()
            .map(|line| serde_json::from_str(line).expect("one json object per line"))
            .collect()
    }

    fn settings(filter: &str) -> TelemetrySettings {
        TelemetrySettings {
            log_format: LogFormat::Json,
            log_filter: <LogFilter as crate::settings::FromSetting>::from_setting(filter)
                .expect("valid filter"),
            otlp_endpoint: None::<OtlpEndpoint>,
            service_name: "mercato-unit".into(),
        }
    }

    #[test]
    fn a_warning_inside_a_span_carries_its_trace_even_when_info_is_filtered_out() {
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let subscriber =
            subscriber(&settings("warn"), &provider, captured.clone()).expect("subscriber builds");
        let trace_id = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("checkout", order.id = "o-7");
            let _entered = span.enter();
            tracing::info!("hidden by the filter");
            tracing::warn!(attempt = 2, "payment retry");
            span.context().span().span_context().trace_id().to_string()
        });
        let lines = json_lines(&captured);
        assert_eq!(lines.len(), 1, "only the warning is logged: {lines:?}");
        let line = &lines[0];
        assert_eq!(line["message"], "payment retry");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["order.id"], "o-7", "span fields are flattened in");
        assert_eq!(line["span"], "checkout");
        assert_eq!(line["service"], "mercato-unit");
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn a_library_warning_that_prints_message_bodies_is_not_logged() {
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let quiet =
            subscriber(&settings("info"), &provider, captured.clone()).expect("subscriber builds");
        tracing::subscriber::with_default(quiet, || {
            tracing::warn!(
                target: "lapin::returned_messages",
                body = "{\"email\":\"shopper@example.com\"}",
                "Server returned us a message"
            );
            tracing::error!(target: "lapin::returned_messages", "still logged");
            tracing::warn!(target: "lapin::channel", "other lapin warnings stay");
        });
        let messages: Vec<Value> = json_lines(&captured)
            .into_iter()
            .map(|line| line["message"].clone())
            .collect();
        assert_eq!(messages, ["still logged", "other lapin warnings stay"]);

        // Named in LOG_FILTER, the operator's choice wins.
        let captured = Captured::default();
        let chosen = subscriber(
            &settings("info,lapin::returned_messages=warn"),
            &provider,
            captured.clone(),
        )
        .expect("subscriber builds");
        tracing::subscriber::with_default(chosen, || {
            tracing::warn!(target: "lapin::returned_messages", "returned");
        });
        assert_eq!(json_lines(&captured).len(), 1);
    }

    #[test]
    fn events_outside_spans_have_no_trace_ids() {
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let subscriber =
            subscriber(&settings("info"), &provider, captured.clone()).expect("subscriber builds");
        tracing::subscriber::with_default(subscriber, || tracing::info!(user.id = "u-1", "hello"));
        let lines = json_lines(&captured);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["user.id"], "u-1");
        assert!(lines[0].get("trace_id").is_none());
    }
}
