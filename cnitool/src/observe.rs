//! What cnitool tells about its run besides the result: the library's
//! warnings on stderr, with `-v` (or `RUST_LOG`) each plugin run's timing,
//! and with `--trace-json FILE` every span as a JSON line.
//!
//! # `-v`
//!
//! One line per plugin run when it ends, then one per operation:
//!
//! ```text
//! cnitool: ADD mynet: plugin bridge: 12.4 ms, exit status 0, 310 bytes in, 402 out
//! cnitool: ADD mynet: plugin portmap: 3.1 ms, exit status 1, CNI error 11
//! cnitool: ADD mynet: 16.0 ms, failed (plugin)
//! ```
//!
//! and the library's messages at `INFO` level (`-vv`: `DEBUG`, `-vvv`:
//! `TRACE`). `RUST_LOG` (`env_logger` directives: `info`,
//! `libcni=debug,warn`...) replaces the filter the flags give; the timings
//! are printed when it lets `INFO` spans of `libcni` through.
//!
//! # `--trace-json FILE`
//!
//! Each span (operations `cni`, plugin runs `plugin`), when it closes, as
//! one JSON object per line, children before their parent:
//!
//! ```text
//! {"id":2,"parent":1,"name":"plugin","target":"libcni::cni","level":"INFO",
//!  "start_unix_ns":1764770000000000000,"duration_ns":12400000,
//!  "fields":{"cni.plugin.type":"bridge","cni.command":"ADD",...}}
//! ```
//!
//! `id`s are unique within the file; `parent` is absent for a root span.
//! The field names are the library's (see `libcni::observe`).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The observability flags (global: allowed before or after the command).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ObserveArgs {
    /// Print each plugin run's duration and outcome on stderr, and the
    /// library's messages (`-vv`: debug messages too). `RUST_LOG` sets the
    /// filter instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write every span (operations and plugin runs, with their fields and
    /// durations) to FILE as JSON lines.
    #[arg(long, global = true, value_name = "FILE")]
    pub trace_json: Option<PathBuf>,
}

/// Keeps the trace file; dropping it flushes the file.
#[must_use = "dropping the guard flushes and closes the trace file"]
pub struct Guard {
    json: Option<Arc<Mutex<BufWriter<File>>>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(w) = &self.json {
            if let Ok(mut w) = w.lock() {
                if let Err(e) = w.flush() {
                    eprintln!("cannot write the trace file: {e}");
                }
            }
        }
    }
}

/// Installs the global subscriber: the library's warnings on stderr (more
/// with `-v` or `RUST_LOG`), the timings, the JSON trace.
///
/// # Errors
///
/// `RUST_LOG` cannot be parsed, or the trace file cannot be created.
pub fn init(args: &ObserveArgs) -> Result<Guard> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v
            .parse::<Targets>()
            .with_context(|| format!("RUST_LOG={v:?} is not a valid filter"))?,
        _ => flag_filter(args.verbose),
    };
    let json = match &args.trace_json {
        Some(path) => {
            let file = File::create(path)
                .with_context(|| format!("cannot create the trace file {}", path.display()))?;
            Some(Arc::new(Mutex::new(BufWriter::new(file))))
        }
        None => None,
    };
    let timings = filter.would_enable("libcni::cni", &Level::INFO);
    // The spans this layer needs: every INFO span for the trace file, else
    // only what the filter lets through.
    let spans_filter = if json.is_some() {
        Targets::new().with_default(Level::INFO)
    } else {
        filter.clone()
    };
    let spans = SpanLayer {
        timings,
        json: json.clone(),
        next_id: AtomicU64::new(1),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false);
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with((timings || json.is_some()).then(|| spans.with_filter(spans_filter)))
        .try_init()
        .context("cannot install the log subscriber")?;
    Ok(Guard { json })
}

/// The filter of the flags: warnings (and nothing of the config loader and
/// watcher, which cnitool reports itself), or more with `-v`.
fn flag_filter(verbose: u8) -> Targets {
    let level = match verbose {
        0 => Level::WARN,
        1 => Level::INFO,
        2 => Level::DEBUG,
        _ => Level::TRACE,
    };
    Targets::new()
        .with_default(level)
        .with_target("libcni::config::load", Level::ERROR)
        // `cnitool watch` reports the watcher's problems on stdout.
        .with_target("libcni::config::watch", Level::ERROR)
}

/// What is kept of a span while it is open.
struct SpanData {
    id: u64,
    start: Instant,
    start_unix_ns: u128,
    fields: Map<String, Value>,
}

/// Collects a span's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

/// Prints the timings and writes the JSON trace.
struct SpanLayer {
    timings: bool,
    json: Option<Arc<Mutex<BufWriter<File>>>>,
    next_id: AtomicU64,
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut Fields(&mut fields));
        let start_unix_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        span.extensions_mut().insert(SpanData {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            start: Instant::now(),
            start_unix_ns,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
            values.record(&mut Fields(&mut data.fields));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let Some(data) = ext.get::<SpanData>() else {
            return;
        };
        let elapsed = data.start.elapsed();
        let meta = span.metadata();
        if self.timings && meta.target().starts_with("libcni") {
            if let Some(line) = timing_line(meta.name(), &data.fields, elapsed) {
                eprintln!("{line}");
            }
        }
        if let Some(w) = &self.json {
            let parent = span
                .parent()
                .and_then(|p| p.extensions().get::<SpanData>().map(|d| d.id));
            let mut obj = Map::new();
            obj.insert("id".into(), data.id.into());
            if let Some(p) = parent {
                obj.insert("parent".into(), p.into());
            }
            obj.insert("name".into(), meta.name().into());
            obj.insert("target".into(), meta.target().into());
            obj.insert("level".into(), meta.level().as_str().into());
            obj.insert(
                "start_unix_ns".into(),
                u64::try_from(data.start_unix_ns).unwrap_or(u64::MAX).into(),
            );
            obj.insert(
                "duration_ns".into(),
                u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).into(),
            );
            obj.insert("fields".into(), Value::Object(data.fields.clone()));
            if let Ok(mut w) = w.lock() {
                let _ = serde_json::to_writer(&mut *w, &obj);
                let _ = w.write_all(b"\n");
            }
        }
    }
}

/// The `-v` line of a closed span: plugin runs and operations.
fn timing_line(name: &str, f: &Map<String, Value>, elapsed: std::time::Duration) -> Option<String> {
    let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("?");
    let ms = |v: Option<f64>| v.unwrap_or(elapsed.as_secs_f64() * 1e3);
    let mut line = String::from("cnitool: ");
    match name {
        "plugin" => {
            let _ = write!(
                line,
                "{} {}: plugin {}: {:.1} ms",
                s("cni.command"),
                s("cni.network.name"),
                s("cni.plugin.type"),
                ms(f.get("duration_ms").and_then(Value::as_f64)),
            );
            if let Some(k) = f.get("cni.plugin.killed").and_then(Value::as_str) {
                let _ = write!(line, ", killed ({k})");
            } else if let Some(st) = f.get("status").and_then(Value::as_str) {
                let _ = write!(line, ", {st}");
            }
            if let Some(code) = f.get("cni.error.code") {
                let _ = write!(line, ", CNI error {code}");
            } else if let Some(e) = f.get("error.type").and_then(Value::as_str) {
                if !f.contains_key("cni.plugin.killed") {
                    let _ = write!(line, ", failed ({e})");
                }
            }
            if let (Some(i), Some(o)) = (
                f.get("cni.plugin.stdin.bytes"),
                f.get("cni.plugin.stdout.bytes"),
            ) {
                let _ = write!(line, ", {i} bytes in, {o} out");
            }
        }
        "cni" => {
            let _ = write!(
                line,
                "{} {}: {:.1} ms",
                s("cni.operation"),
                s("cni.network.name"),
                ms(None),
            );
            match f.get("error.type").and_then(Value::as_str) {
                Some(e) => {
                    let _ = write!(line, ", failed ({e})");
                }
                None => line.push_str(", ok"),
            }
        }
        _ => return None,
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn timing_lines_are_readable() {
        let d = std::time::Duration::from_millis(5);
        let ok = map(
            json!({"cni.command":"ADD","cni.network.name":"n","cni.plugin.type":"bridge",
            "duration_ms":12.34,"status":"exit status 0","process.exit.code":0,
            "cni.plugin.stdin.bytes":310,"cni.plugin.stdout.bytes":402}),
        );
        assert_eq!(
            timing_line("plugin", &ok, d).unwrap(),
            "cnitool: ADD n: plugin bridge: 12.3 ms, exit status 0, 310 bytes in, 402 out"
        );
        let failed = map(
            json!({"cni.command":"ADD","cni.network.name":"n","cni.plugin.type":"pm",
            "duration_ms":3.06,"status":"exit status 1","process.exit.code":1,
            "cni.error.code":11,"error.type":"plugin"}),
        );
        assert_eq!(
            timing_line("plugin", &failed, d).unwrap(),
            "cnitool: ADD n: plugin pm: 3.1 ms, exit status 1, CNI error 11"
        );
        let killed = map(
            json!({"cni.command":"DEL","cni.network.name":"n","cni.plugin.type":"h",
            "duration_ms":200.0,"status":"not run to completion","cni.plugin.killed":"timeout",
            "error.type":"timeout"}),
        );
        assert_eq!(
            timing_line("plugin", &killed, d).unwrap(),
            "cnitool: DEL n: plugin h: 200.0 ms, killed (timeout)"
        );
        let op = map(json!({"cni.operation":"ADD","cni.network.name":"n","error.type":"plugin"}));
        assert_eq!(
            timing_line("cni", &op, d).unwrap(),
            "cnitool: ADD n: 5.0 ms, failed (plugin)"
        );
        assert!(timing_line("other", &op, d).is_none());
    }

    #[test]
    fn flags_set_the_level() {
        assert!(!flag_filter(0).would_enable("libcni::cni", &Level::INFO));
        assert!(flag_filter(0).would_enable("libcni::cni", &Level::WARN));
        assert!(flag_filter(1).would_enable("libcni::cni", &Level::INFO));
        assert!(!flag_filter(1).would_enable("libcni::cni", &Level::DEBUG));
        assert!(flag_filter(2).would_enable("libcni::cni", &Level::DEBUG));
        assert!(!flag_filter(3).would_enable("libcni::config::load", &Level::WARN));
    }
}
