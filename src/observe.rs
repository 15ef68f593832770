//! Observability: the [`Observer`] hook for metrics, and (with the
//! `opentelemetry` feature) the trace context handed to plugins.
//!
//! # Spans
//!
//! Every operation runs in a `cni` span and every plugin run in a `plugin`
//! span inside it, at `INFO` level, with fields named after the
//! OpenTelemetry semantic conventions where one exists:
//!
//! | span | field | value |
//! |------|-------|-------|
//! | `cni` | `cni.operation` | `ADD`, `CHECK`, `DEL`, `GC`, `STATUS` |
//! | `cni` | `cni.network.name` | the network |
//! | `cni` | `container.id` | the container ID (not for GC and STATUS) |
//! | `cni` | `network.interface.name` | the interface name (not for GC and STATUS) |
//! | `cni` | `error.type` | on failure, the [`ErrorKind::name`] |
//! | `cni`, `plugin` | `otel.status_code` | `ERROR` on failure |
//! | `plugin` | `cni.plugin.type` | the plugin type |
//! | `plugin` | `process.executable.path` | the binary |
//! | `plugin` | `cni.command` | `CNI_COMMAND` |
//! | `plugin` | `cni.network.name` | the network |
//! | `plugin` | `cni.plugin.stdin.bytes` | bytes written to its stdin |
//! | `plugin` | `cni.plugin.stdout.bytes`, `cni.plugin.stderr.bytes` | bytes it wrote |
//! | `plugin` | `process.exit.code` | its exit code, when it exited |
//! | `plugin` | `cni.plugin.signal` | the signal that ended it, if one did |
//! | `plugin` | `status` | how it ended, readable (`exit status 0`) |
//! | `plugin` | `cni.error.code` | the CNI error code it reported, if any |
//! | `plugin` | `error.type` | on failure, the [`ErrorKind::name`] |
//! | `plugin` | `cni.plugin.killed` | `timeout` or `cancelled` when its process group was killed |
//! | `plugin` | `duration_ms` | how long it ran (without waiting for a concurrency permit) |
//!
//! Fields not known when a span opens are recorded later; nothing is
//! formatted or allocated for them when no subscriber is interested.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Op};
use crate::exit::ExitStatus;

/// Receives an event at the end of every operation and every plugin run of
/// a [`Cni`](crate::Cni) ([`Cni::with_observer`](crate::Cni::with_observer)):
/// the hook for metrics (counts by network, plugin and outcome, duration
/// histograms). Both methods do nothing by default.
///
/// The methods are called on the task running the operation, so they must
/// be quick and must not block: update counters, send to a channel. No
/// exporter is built in; `examples/metrics.rs` keeps Prometheus-style
/// counters and a histogram and prints them in the text exposition format.
pub trait Observer: Send + Sync {
    /// An operation ended (successfully or not). Not called for an
    /// operation whose future is dropped before it ends, nor for a dry run
    /// ([`Cni::plan`](crate::Cni::plan)).
    fn operation(&self, event: &OperationEvent<'_>) {
        let _ = event;
    }

    /// A plugin run ended: it exited, could not be run, timed out, or was
    /// killed because the operation's future was dropped (its deadline, or
    /// the caller's cancellation).
    fn plugin_run(&self, event: &PluginRunEvent<'_>) {
        let _ = event;
    }
}

/// How an operation or a plugin run ended.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// It succeeded.
    Success,
    /// It failed with this error.
    Failed(&'a Error),
    /// Its future was dropped before it ended (a plugin's process group is
    /// then killed).
    Cancelled,
}

impl Outcome<'_> {
    /// A short label: `"ok"`, `"cancelled"`, or the error's
    /// [`ErrorKind::name`] (`"plugin"`, `"timeout"`...).
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success => "ok",
            Outcome::Failed(e) => e.kind().name(),
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Whether it succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// The error, if it failed.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The end of an operation ([`Observer::operation`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct OperationEvent<'a> {
    /// The operation.
    pub op: Op,
    /// The network.
    pub network: &'a str,
    /// The container ID (`None` for GC and STATUS).
    pub container_id: Option<&'a str>,
    /// The interface name (`None` for GC and STATUS).
    pub ifname: Option<&'a str>,
    /// How long the whole operation took.
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome<'a>,
}

/// Why a plugin's process group was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Killed {
    /// It ran longer than the [`Cni`](crate::Cni)'s timeout.
    Timeout,
    /// The operation's future was dropped (its deadline, or the caller's
    /// cancellation).
    Cancelled,
}

impl Killed {
    /// `"timeout"` or `"cancelled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Killed::Timeout => "timeout",
            Killed::Cancelled => "cancelled",
        }
    }
}

/// The end of a plugin run ([`Observer::plugin_run`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PluginRunEvent<'a> {
    /// The CNI command it ran.
    pub op: Op,
    /// The network.
    pub network: &'a str,
    /// The plugin type.
    pub plugin_type: &'a str,
    /// The binary.
    pub path: &'a Path,
    /// How long it ran (without waiting for a concurrency permit).
    pub duration: Duration,
    /// How the process ended, if it ran to the end.
    pub status: Option<ExitStatus>,
    /// Bytes written to its stdin.
    pub stdin_bytes: usize,
    /// Bytes it wrote to stdout (0 if it did not run to the end).
    pub stdout_bytes: usize,
    /// Bytes it wrote to stderr (0 if it did not run to the end).
    pub stderr_bytes: usize,
    /// Whether, and why, its process group was killed.
    pub killed: Option<Killed>,
    /// How it ended: a non-zero exit is a failure ([`ErrorKind::Plugin`]
    /// or [`ErrorKind::PluginExit`]).
    pub outcome: Outcome<'a>,
}

/// The observer of a [`Cni`](crate::Cni), if it has one.
#[derive(Clone, Default)]
pub(crate) struct ObserverSlot(pub(crate) Option<std::sync::Arc<dyn Observer>>);

impl fmt::Debug for ObserverSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// The `error.type` and `otel.status_code` of a failed span.
pub(crate) fn record_error(span: &tracing::Span, e: &Error) {
    span.record("error.type", e.kind().name());
    span.record("otel.status_code", "ERROR");
}

/// Records how a plugin process ended on its span.
pub(crate) fn record_exit(span: &tracing::Span, status: ExitStatus) {
    match status {
        ExitStatus::Exited(code) => span.record("process.exit.code", i64::from(code)),
        ExitStatus::Signaled(sig) => span.record("cni.plugin.signal", i64::from(sig)),
    };
    span.record("status", tracing::field::display(status));
}

/// The CNI error code of a failed plugin run, if the plugin reported one.
pub(crate) fn cni_error_code(e: &Error) -> Option<u64> {
    match e.kind() {
        ErrorKind::Plugin { error } => Some(error.code().as_u64()),
        _ => None,
    }
}

/// The environment a plugin runs with: `env` with the trace context of
/// `span` (the plugin run's span) set over it, as OTEP 0258 describes and
/// upstream libcni does: `TRACEPARENT`, and `TRACESTATE` and `BAGGAGE` when
/// they are not empty, in the W3C formats. Any inherited value of these is
/// replaced, never duplicated. Without a valid OpenTelemetry context (or
/// without the `opentelemetry` feature), `env` is returned as it is.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn plugin_env<'a>(
    _span: &tracing::Span,
    env: &'a crate::exec::Environment,
) -> std::borrow::Cow<'a, crate::exec::Environment> {
    std::borrow::Cow::Borrowed(env)
}

/// The environment a plugin runs with: `env` with the trace context of
/// `span` (the plugin run's span) set over it, as OTEP 0258 describes and
/// upstream libcni does: `TRACEPARENT`, and `TRACESTATE` and `BAGGAGE` when
/// they are not empty, in the W3C formats. Any inherited value of these is
/// replaced, never duplicated. When the OpenTelemetry layer does not see
/// the run's span (a filter), the active OpenTelemetry context (the
/// caller's) is handed over. Without a valid OpenTelemetry context, `env` is
/// returned as it is.
#[cfg(feature = "opentelemetry")]
pub(crate) fn plugin_env<'a>(
    span: &tracing::Span,
    env: &'a crate::exec::Environment,
) -> std::borrow::Cow<'a, crate::exec::Environment> {
    use std::borrow::Cow;

    use opentelemetry::trace::TraceContextExt;
    // The run's span; when a filter left it out, the active OpenTelemetry
    // context: that of the innermost entered span the OpenTelemetry layer
    // saw (the caller's), or one the caller attached itself.
    let cx = (!span.is_disabled())
        .then(|| tracing_opentelemetry::OpenTelemetrySpanExt::context(span))
        .filter(|cx| cx.span().span_context().is_valid())
        .unwrap_or_else(opentelemetry::Context::current);
    match otel::inject(&cx) {
        Some(vars) => Cow::Owned(otel::set_over(env, vars)),
        None => Cow::Borrowed(env),
    }
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use std::collections::HashMap;
    use std::ffi::OsString;

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

    /// The variables for a context: `None` when it has no valid span
    /// context. Header names are the W3C ones (lower case); the variables
    /// are their upper-case forms (OTEP 0258).
    pub(super) fn inject(cx: &opentelemetry::Context) -> Option<Vec<(OsString, OsString)>> {
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut headers: HashMap<String, String> = HashMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut headers);
        BaggagePropagator::new().inject_context(cx, &mut headers);
        let mut vars = Vec::with_capacity(3);
        for (header, var) in [
            ("traceparent", "TRACEPARENT"),
            ("tracestate", "TRACESTATE"),
            ("baggage", "BAGGAGE"),
        ] {
            if let Some(v) = headers.remove(header).filter(|v| !v.is_empty()) {
                vars.push((OsString::from(var), OsString::from(v)));
            }
        }
        Some(vars)
    }

    /// `env` with `vars` set over it: the three trace variables are all
    /// removed first (a stale inherited `TRACESTATE` must not outlive the
    /// context it belonged to), then `vars` appended.
    pub(super) fn set_over(
        env: &crate::exec::Environment,
        vars: Vec<(OsString, OsString)>,
    ) -> crate::exec::Environment {
        env.without(&["TRACEPARENT", "TRACESTATE", "BAGGAGE"])
            .with_vars(vars)
    }

    #[cfg(test)]
    mod tests {
        use std::str::FromStr;

        use opentelemetry::baggage::BaggageExt;
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        use opentelemetry::{Context, KeyValue};

        use super::*;

        fn os(s: &str) -> OsString {
            OsString::from(s)
        }

        #[test]
        fn no_valid_context_no_variables() {
            assert!(inject(&Context::new()).is_none());
        }

        #[test]
        fn w3c_variables_set_over_inherited_ones() {
            let sc = SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                TraceFlags::SAMPLED,
                true,
                TraceState::from_str("vendor=x").unwrap(),
            );
            let cx = Context::new()
                .with_remote_span_context(sc)
                .with_baggage([KeyValue::new("user", "a b")]);
            let vars = inject(&cx).unwrap();
            let env: crate::exec::Environment = [
                (os("PATH"), os("/bin")),
                (os("TRACEPARENT"), os("stale")),
                (os("TRACESTATE"), os("stale")),
                (os("X"), os("1")),
            ]
            .into_iter()
            .collect();
            let out = set_over(&env, vars);
            assert_eq!(
                Vec::from(&out),
                [
                    (os("BAGGAGE"), os("user=a%20b")),
                    (os("PATH"), os("/bin")),
                    (
                        os("TRACEPARENT"),
                        os("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                    ),
                    (os("TRACESTATE"), os("vendor=x")),
                    (os("X"), os("1")),
                ]
            );
        }

        #[test]
        fn empty_tracestate_and_baggage_are_not_set() {
            let sc = SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                TraceFlags::default(),
                true,
                TraceState::default(),
            );
            let vars = inject(&Context::new().with_remote_span_context(sc)).unwrap();
            assert_eq!(
                vars,
                [(
                    os("TRACEPARENT"),
                    os("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                )]
            );
        }
    }
}
