//! The envelope of cnitool's JSON output.
//!
//! Every JSON object cnitool prints for a machine starts with two fields:
//! `"schema": "cnitool/v1"` (the version of this format; a change that is
//! not backwards compatible gets a new version) and `"kind"` (what the rest
//! of the object is, e.g. `"networks"` for a report of `cnitool watch`).
//! Every command's `--json` output uses it; `cnitool/JSON.md` documents
//! each kind and its fields.

use serde::Serialize;

/// The version of cnitool's JSON output.
pub const SCHEMA: &str = "cnitool/v1";

/// `{"schema": SCHEMA, "kind": kind, ...body}`.
#[derive(Serialize)]
pub struct Envelope<'a, T> {
    schema: &'static str,
    kind: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

impl<'a, T: Serialize> Envelope<'a, T> {
    pub fn new(kind: &'a str, body: &'a T) -> Self {
        Envelope {
            schema: SCHEMA,
            kind,
            body,
        }
    }

    /// One line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

/// The attachment an ADD, CHECK or DEL is about: `containerId`, `ifname`
/// and `netns`, flattened into the object that names it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment<'a> {
    container_id: &'a str,
    ifname: &'a str,
    netns: &'a str,
}

impl<'a> Attachment<'a> {
    pub fn of(rt: &'a libcni::RuntimeConfig) -> Attachment<'a> {
        Attachment {
            container_id: rt.container_id(),
            ifname: rt.ifname(),
            netns: rt.netns(),
        }
    }
}

/// `body` in the envelope of `kind`, as one line of JSON with its newline.
pub fn json_line<T: Serialize>(kind: &str, body: &T) -> String {
    let mut line = Envelope::new(kind, body).to_line();
    line.push('\n');
    line
}
