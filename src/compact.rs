//! A plugin configuration encoded once for every stdin it goes into.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use crate::json::{RawObject, compact_into, write_go_str};

/// A JSON object as its stdin needs it: each entry already written as
/// compact `"key":value` bytes, so that building a plugin's stdin is a copy
/// of the entries that are not injected, then the injected ones, with no
/// parsing the text again.
#[derive(Debug)]
pub(crate) struct CompactObject {
    /// The entries' `"key":value` bytes back to back; or, for text that is
    /// not a JSON object, the text itself.
    buf: Vec<u8>,
    /// Each entry's key and where its bytes are in `buf`; `None` for text
    /// that is not an object (written as it is).
    entries: Option<Vec<(Box<str>, Range<usize>)>>,
}

impl CompactObject {
    /// Encodes `text`, a JSON object (anything else is kept verbatim).
    pub(crate) fn new(text: &str) -> CompactObject {
        let Ok(obj) = RawObject::parse(text) else {
            return CompactObject {
                buf: text.as_bytes().to_vec(),
                entries: None,
            };
        };
        let mut buf = Vec::with_capacity(text.len());
        let mut entries = Vec::with_capacity(obj.entries.len());
        for (k, v) in &obj.entries {
            let start = buf.len();
            write_go_str(k, &mut buf);
            buf.push(b':');
            compact_into(v.get(), &mut buf);
            entries.push((Box::from(k.as_ref()), start..buf.len()));
        }
        CompactObject {
            buf,
            entries: Some(entries),
        }
    }

    /// The encoded size, without what is injected.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() + 2
    }

    /// Writes the object compactly with `inject` set: keys named in `inject`
    /// are removed from their place and written, in the order given, after
    /// all other keys (so that they win even over a differently-cased key in
    /// a case-insensitive decoder). Every other value is copied byte for
    /// byte, less insignificant whitespace.
    pub(crate) fn write_with(&self, inject: &[(&str, &[u8])], out: &mut Vec<u8>) {
        let Some(entries) = &self.entries else {
            out.extend_from_slice(&self.buf);
            return;
        };
        out.push(b'{');
        let mut first = true;
        for (k, range) in entries {
            if inject.iter().any(|(ik, _)| **ik == **k) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&self.buf[range.clone()]);
        }
        for (k, v) in inject {
            if !first {
                out.push(b',');
            }
            first = false;
            write_go_str(k, out);
            out.push(b':');
            out.extend_from_slice(v);
        }
        out.push(b'}');
    }
}

/// A [`CompactObject`] made on first use and shared by clones (a plugin
/// configuration is loaded once and runs many times).
#[derive(Debug, Clone, Default)]
pub(crate) struct LazyCompact(Arc<OnceLock<Arc<CompactObject>>>);

impl LazyCompact {
    /// The encoding of `text` (which must be the same text on every call).
    pub(crate) fn get(&self, text: &str) -> Arc<CompactObject> {
        self.0
            .get_or_init(|| Arc::new(CompactObject::new(text)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How stdin was written before, from the text each time.
    fn reference(o: &RawObject<'_>, inject: &[(&str, &[u8])], out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (k, v) in &o.entries {
            if inject.iter().any(|(ik, _)| *ik == k.as_ref()) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_go_str(k, out);
            out.push(b':');
            compact_into(v.get(), out);
        }
        for (k, v) in inject {
            if !first {
                out.push(b',');
            }
            first = false;
            write_go_str(k, out);
            out.push(b':');
            out.extend_from_slice(v);
        }
        out.push(b'}');
    }

    fn both(text: &str, inject: &[(&str, &[u8])]) -> (String, String) {
        let mut want = Vec::new();
        match RawObject::parse(text) {
            Ok(o) => reference(&o, inject, &mut want),
            Err(_) => want.extend_from_slice(text.as_bytes()),
        }
        let mut got = Vec::new();
        CompactObject::new(text).write_with(inject, &mut got);
        (
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap(),
        )
    }

    #[test]
    fn writes_what_the_raw_object_writes() {
        let inject: &[(&str, &[u8])] = &[("cniVersion", b"\"1.0.0\""), ("name", b"\"n\"")];
        for text in [
            r#"{"type":"bridge","name":"x","mtu": 1.50 ,"Name":"z","a<b":"\u00e9","x":[1, {"y" : null}]}"#,
            r#"{"name":"only"}"#,
            "{}",
            r#"{"k":1,"k":2}"#,
            "[1,2]",
            "not json",
        ] {
            for inject in [inject, &[]] {
                let (got, want) = both(text, inject);
                assert_eq!(got, want, "{text}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn writes_what_the_raw_object_writes_for_any_object(
            keys in proptest::collection::vec("[a-zA-Z<&]{0,4}", 0..8),
            inject_keys in proptest::collection::vec("[a-zA-Z]{0,3}", 0..3),
        ) {
            let body: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{} : [{i}, \"v\"]", serde_json::to_string(k).unwrap()))
                .collect();
            let text = format!("{{ {} }}", body.join(" , "));
            let inject: Vec<(&str, &[u8])> =
                inject_keys.iter().map(|k| (k.as_str(), &b"true"[..])).collect();
            let (got, want) = both(&text, &inject);
            proptest::prop_assert_eq!(got, want);
        }
    }
}
