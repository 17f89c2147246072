//! Trace export (`telemetry.otlpEndpoint`): the `tracing` spans of llama-orch's own crates
//! (tasks, reconcile passes) become OpenTelemetry spans, batched by a task on the daemon's
//! tokio runtime and sent as OTLP/HTTP protobuf to the endpoint. Without an endpoint none of
//! this is built and no OpenTelemetry layer is installed: the log subscriber is as before.
//!
//! Only spans go out (log lines stay in the log, not in span events), and only those of
//! `llorch_*` targets at `INFO` or above; which attributes they carry is decided where they
//! are made (`llorch_api::tasks::spans`, the controller's pass).

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

/// `service.name` of every span.
pub const SERVICE_NAME: &str = "llama-orchd";

/// How long one export may take; also bounds the flush at shutdown.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// The running exporter.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Starts exporting to `url` (`…/v1/traces`) as instance `instance`. Call inside the
    /// tokio runtime: the batch task is spawned on it.
    pub fn start(url: &str, instance: &str) -> anyhow::Result<Self> {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("telemetry.otlpEndpoint: cannot build the OTLP exporter: {e}"))?;
        let resource = Resource::builder_empty()
            .with_service_name(SERVICE_NAME)
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.instance.id", instance.to_string()),
            ])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
            .with_resource(resource)
            .build();
        Ok(Self { provider })
    }

    /// The layer that turns llama-orch's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(SERVICE_NAME))
            // No clock reads on every enter and exit (a task's span is entered at every poll
            // of its stream), no thread or source-location attributes.
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_filter(filter_fn(|meta| {
                meta.is_span() && *meta.level() <= tracing::Level::INFO && meta.target().starts_with("llorch_")
            }))
    }

    /// Sends what is batched and stops. Call outside the runtime's workers, while it runs.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the last spans were not all exported");
        }
    }
}
