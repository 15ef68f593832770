//! A minimal global `tracing` subscriber that records every span: its name,
//! fields and parent (a global default, so callsite interest is never
//! cached as "never" by another test thread).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A recorded span.
#[derive(Debug, Clone)]
pub struct Span {
    /// Its id (1-based, in creation order).
    pub id: u64,
    /// Its name (`cni`, `plugin`).
    pub name: String,
    /// Its parent's id, if it has one.
    pub parent: Option<u64>,
    /// Its fields, `Debug`-formatted, strings without quotes.
    pub fields: BTreeMap<String, String>,
}

impl Span {
    /// A field's value; panics if the span lacks it.
    pub fn get(&self, field: &str) -> &str {
        self.fields
            .get(field)
            .unwrap_or_else(|| panic!("span {} has no field {field}: {self:?}", self.name))
    }
}

static SPANS: Mutex<Vec<Span>> = Mutex::new(Vec::new());

thread_local! {
    static CURRENT: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);
impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        self.0
            .insert(field.name().to_owned(), v.trim_matches('"').to_owned());
    }
}

struct Capture;

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = if attrs.is_contextual() {
            CURRENT.with(|c| c.borrow().last().copied())
        } else {
            attrs.parent().map(Id::into_u64)
        };
        let mut v = SPANS.lock().unwrap();
        let id = v.len() as u64 + 1;
        v.push(Span {
            id,
            name: attrs.metadata().name().to_owned(),
            parent,
            fields,
        });
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut v = SPANS.lock().unwrap();
        values.record(&mut Fields(&mut v[span.into_u64() as usize - 1].fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, span: &Id) {
        CURRENT.with(|c| c.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, span: &Id) {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(i) = c.iter().rposition(|s| *s == span.into_u64()) {
                c.remove(i);
            }
        });
    }
}

/// Installs the capture as the global default (once per test binary).
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture).expect("no other global subscriber");
    });
}

/// The spans recorded so far whose `cni.network.name` is `network`.
pub fn spans_of(network: &str) -> Vec<Span> {
    SPANS
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.fields
                .get("cni.network.name")
                .is_some_and(|n| n == network)
        })
        .cloned()
        .collect()
}
