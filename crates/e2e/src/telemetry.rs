//! Installs the platform's telemetry for the whole test process, as `telemetry::init` does in a
//! service's `main`, but with the logs going to a buffer: JSON lines at `LOG_FILTER`, spans
//! exported to a collector when one is given.

use mercato_platform::settings::{
    FromSetting as _, LogFilter, LogFormat, OtlpEndpoint, TelemetrySettings,
};
use mercato_platform::telemetry;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::logs::CapturedLogs;

/// The installed telemetry: flush it before reading the collector.
#[derive(Debug)]
pub struct ProcessTelemetry {
    /// The tracer provider every in-process service shares.
    pub provider: SdkTracerProvider,
    /// What the services logged.
    pub logs: CapturedLogs,
}

impl ProcessTelemetry {
    /// Installs the subscriber process-wide (panics when one is installed already: each test
    /// binary calls this once). `otlp_endpoint` exports spans there in batches.
    pub fn install(otlp_endpoint: Option<&str>, log_filter: &str) -> Self {
        let settings = TelemetrySettings {
            log_format: LogFormat::Json,
            log_filter: LogFilter::from_setting(log_filter).expect("a valid log filter"),
            otlp_endpoint: otlp_endpoint
                .map(|endpoint| OtlpEndpoint::from_setting(endpoint).expect("a valid endpoint")),
            service_name: "mercato-e2e".to_owned(),
        };
        let provider = telemetry::tracer_provider(&settings).expect("the tracer provider builds");
        let logs = CapturedLogs::default();
        let subscriber =
            telemetry::subscriber(&settings, &provider, logs.clone()).expect("subscriber builds");
        tracing::subscriber::set_global_default(subscriber)
            .expect("no subscriber is installed before the test installs its own");
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        Self { provider, logs }
    }

    /// Exports every finished span now (the batch exporter otherwise waits for its interval).
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .expect("the flush task runs")
            .expect("spans are flushed");
    }
}
