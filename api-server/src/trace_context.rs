//! W3C Trace Context at the API's two edges: a client's `traceparent` (and `tracestate`)
//! becomes the remote parent of its task's span, and a request to an engine carries the
//! `traceparent` of the span it is made in. Parsing and formatting are OpenTelemetry's own
//! [`TraceContextPropagator`]; the span contexts are those of `tracing-opentelemetry`.
//!
//! Without the OpenTelemetry layer (no `telemetry.otlpEndpoint`) spans have no trace context:
//! a client's parent is then dropped, and nothing is sent to engines or returned to clients.
//! This module never fails a request: a malformed header is ignored (and logged at debug,
//! without its value).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// W3C's parent header, in and out.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// W3C's vendor state, read with the parent.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// The header an answer names its task's trace in (W3C Trace Context Level 2's
/// `traceresponse`): `00-<trace id>-<task span id>-<flags>`.
pub const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// Longest `traceparent` or `tracestate` read (W3C's own limit for `tracestate` is 512).
const MAX_HEADER: usize = 512;

/// A client's trace, which a task's span continues; empty when the client sent none, or a
/// malformed one.
#[derive(Clone, Debug, Default)]
pub struct RemoteParent(Option<Context>);

impl RemoteParent {
    /// The parent the request's `traceparent` and `tracestate` headers name, if well-formed.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(TRACEPARENT) else {
            return Self(None);
        };
        let parent = Self::parse(
            value.to_str().unwrap_or(""),
            headers.get(TRACESTATE).and_then(|v| v.to_str().ok()),
        );
        if parent.0.is_none() {
            tracing::debug!(
                bytes = value.len(),
                "ignored a malformed traceparent header; the task starts a trace of its own"
            );
        }
        parent
    }

    /// The parent a `traceparent` value (and `tracestate`) names; empty when malformed:
    /// a bad shape, version `ff`, an all-zero trace or span id.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Self {
        if traceparent.len() > MAX_HEADER || !w3c_widths(traceparent) {
            return Self(None);
        }
        let mut fields = Fields::default();
        fields.0.push(("traceparent", traceparent));
        if let Some(state) = tracestate.filter(|s| s.len() <= MAX_HEADER) {
            fields.0.push(("tracestate", state));
        }
        let cx = TraceContextPropagator::new().extract(&fields);
        Self(cx.span().span_context().is_valid().then_some(cx))
    }

    /// The client's span, when there is one.
    pub fn span_context(&self) -> Option<SpanContext> {
        self.0.as_ref().map(|cx| cx.span().span_context().clone())
    }

    /// Makes `span` a child of the client's span (nothing without a parent, or without the
    /// OpenTelemetry layer).
    pub fn adopt(&self, span: &tracing::Span) {
        if let Some(cx) = &self.0 {
            let _ = span.set_parent(cx.clone());
        }
    }
}

/// `span`'s `traceparent` value, when it has a trace context (the OpenTelemetry layer is on).
pub fn traceparent_of(span: &tracing::Span) -> Option<HeaderValue> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut out = Out(None);
    TraceContextPropagator::new().inject_context(&cx, &mut out);
    out.0
}

/// The `traceparent` of the span the caller runs in (the engine request's, for a request
/// made under it).
pub fn current_traceparent() -> Option<HeaderValue> {
    traceparent_of(&tracing::Span::current())
}

/// True when the first four fields have W3C's widths (2, 32, 16 and 2 characters); the
/// propagator checks the rest, but reads flags of one digit.
fn w3c_widths(traceparent: &str) -> bool {
    let mut fields = traceparent.split('-');
    [2, 32, 16, 2]
        .into_iter()
        .all(|width| fields.next().is_some_and(|f| f.len() == width))
}

/// Header fields to extract from, without copying the map.
#[derive(Default)]
struct Fields<'a>(Vec<(&'a str, &'a str)>);

impl Extractor for Fields<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
}

/// Keeps the injected `traceparent` only (no `tracestate` is sent on).
struct Out(Option<HeaderValue>);

impl Injector for Out {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = HeaderValue::from_str(&value).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn parsed(value: &str) -> Option<SpanContext> {
        RemoteParent::parse(value, None).span_context()
    }

    #[test]
    fn a_well_formed_traceparent_is_the_remote_parent() {
        let cx = parsed(&format!("00-{TRACE}-{SPAN}-01")).unwrap();
        assert_eq!(cx.trace_id(), TraceId::from_hex(TRACE).unwrap());
        assert_eq!(cx.span_id(), SpanId::from_hex(SPAN).unwrap());
        assert_eq!(cx.trace_flags(), TraceFlags::SAMPLED);
        assert!(cx.is_remote());
        let unsampled = parsed(&format!("00-{TRACE}-{SPAN}-00")).unwrap();
        assert!(!unsampled.is_sampled());
    }

    #[test]
    fn tracestate_comes_along_with_its_parent() {
        let parent = RemoteParent::parse(&format!("00-{TRACE}-{SPAN}-01"), Some("vendor=abc"));
        let state = parent.span_context().unwrap().trace_state().header();
        assert_eq!(state, "vendor=abc");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            String::new(),
            "garbage".into(),
            format!("00-{TRACE}-{SPAN}"),
            format!("00-{TRACE}-{SPAN}-1"),
            format!("00-{}-{SPAN}-01", &TRACE[1..]),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("0-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-01").replace('-', "_"),
            format!("00-{}-{SPAN}-01", "g".repeat(32)),
            format!("00-{TRACE}-{SPAN}-01{}", " ".repeat(600)),
        ] {
            assert!(parsed(&bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn all_zero_ids_are_ignored() {
        assert!(parsed(&format!("00-{}-{SPAN}-01", "0".repeat(32))).is_none());
        assert!(parsed(&format!("00-{TRACE}-{}-01", "0".repeat(16))).is_none());
    }

    #[test]
    fn version_ff_is_ignored_and_a_later_version_is_read_as_00() {
        assert!(parsed(&format!("ff-{TRACE}-{SPAN}-01")).is_none());
        let later = parsed(&format!("01-{TRACE}-{SPAN}-01-what-comes-later")).unwrap();
        assert_eq!(later.trace_id(), TraceId::from_hex(TRACE).unwrap());
    }

    #[test]
    fn headers_carry_the_parent_and_a_bad_one_is_no_error() {
        let mut headers = HeaderMap::new();
        assert!(RemoteParent::from_headers(&headers).span_context().is_none());
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-nonsense"));
        assert!(RemoteParent::from_headers(&headers).span_context().is_none());
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_str(&format!("00-{TRACE}-{SPAN}-01")).unwrap(),
        );
        assert!(RemoteParent::from_headers(&headers).span_context().is_some());
    }

    #[test]
    fn without_the_opentelemetry_layer_spans_carry_no_traceparent() {
        let span = tracing::info_span!("task");
        RemoteParent::parse(&format!("00-{TRACE}-{SPAN}-01"), None).adopt(&span);
        assert!(traceparent_of(&span).is_none());
        assert!(current_traceparent().is_none());
    }

    #[test]
    fn under_the_opentelemetry_layer_a_span_continues_its_parent_and_names_itself() {
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("task");
            RemoteParent::parse(&format!("00-{TRACE}-{SPAN}-01"), None).adopt(&span);
            let child = tracing::info_span!(parent: &span, "engine request");
            let out = child.in_scope(current_traceparent).unwrap();
            let out = out.to_str().unwrap();
            assert!(out.starts_with(&format!("00-{TRACE}-")), "{out}");
            assert!(out.ends_with("-01"), "{out}");
            assert!(!out.contains(SPAN), "the engine gets the child's span id: {out}");
            assert_eq!(traceparent_of(&child).unwrap(), out);
        });
    }
}
