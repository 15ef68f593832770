//! JSON helpers: Go-compatible output, raw-preserving object edits, and Go's
//! case-insensitive field lookup.

use std::borrow::Cow;
use std::io;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub(crate) mod tree;

/// A serde_json formatter that escapes strings as Go's `encoding/json` does:
/// `<`, `>`, `&`, U+2028 and U+2029 become `\u003c`, `\u003e`, `\u0026`,
/// `\u2028`, `\u2029`.
struct GoFormatter<F>(F);

fn write_go_fragment<W: ?Sized + io::Write>(w: &mut W, fragment: &str) -> io::Result<()> {
    let bytes = fragment.as_bytes();
    // Most strings have nothing to escape: one pass that the compiler
    // vectorizes, then a single write. (0xE2 starts U+2028 and U+2029.)
    if !bytes.iter().fold(false, |any, &b| {
        any | matches!(b, b'<' | b'>' | b'&' | 0xE2)
    }) {
        return w.write_all(bytes);
    }
    let mut start = 0;
    for (i, c) in fragment.char_indices() {
        let esc: &[u8] = match c {
            '<' => b"\\u003c",
            '>' => b"\\u003e",
            '&' => b"\\u0026",
            '\u{2028}' => b"\\u2028",
            '\u{2029}' => b"\\u2029",
            _ => continue,
        };
        w.write_all(&bytes[start..i])?;
        w.write_all(esc)?;
        start = i + c.len_utf8();
    }
    w.write_all(&bytes[start..])
}

/// Bytes [`write_go_str`] looks at: ASCII controls, `"`, `\\`, `<`, `>`,
/// `&`, and 0xE2 (the first byte of U+2028 and U+2029).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xE2] = true;
    t
};

/// Appends `s` as a JSON string, escaped byte for byte as [`to_go_json`]
/// escapes it (serde_json's escapes, lowercase `\u00xx` for other controls,
/// plus Go's `<`, `>`, `&`, U+2028 and U+2029), without going through
/// serde.
pub(crate) fn write_go_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !SPECIAL[b as usize] {
            continue;
        }
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'<' => b"\\u003c",
            b'>' => b"\\u003e",
            b'&' => b"\\u0026",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0C => b"\\f",
            b'\r' => b"\\r",
            0xE2 => match bytes.get(i + 1..i + 3) {
                Some([0x80, 0xA8]) => b"\\u2028",
                Some([0x80, 0xA9]) => b"\\u2029",
                _ => continue,
            },
            _ => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xF)],
                ]);
                start = i + 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        // U+2028 and U+2029 are three bytes; their last two are not special.
        start = i + if b == 0xE2 { 3 } else { 1 };
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name<W: ?Sized + io::Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
            self.0.$name(w $(, $arg)*)
        })*
    };
}

impl<F: Formatter> Formatter for GoFormatter<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_go_fragment(w, fragment)
    }
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        self.0.write_char_escape(w, escape)
    }
    delegate! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        end_object_key();
        begin_object_value();
        end_object_value();
    }
}

fn serialize_with<T: ?Sized + Serialize, F: Formatter>(value: &T, f: F) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    serialize_into(value, f, &mut out);
    out
}

fn serialize_into<T: ?Sized + Serialize, F: Formatter>(value: &T, f: F, out: &mut Vec<u8>) {
    let mut ser = serde_json::Serializer::with_formatter(out, GoFormatter(f));
    // Serializing our own types and `Value`s into a Vec cannot fail.
    value
        .serialize(&mut ser)
        .expect("serializing to memory cannot fail");
}

/// Compact JSON, escaped like Go's `json.Marshal`.
pub(crate) fn to_go_json<T: ?Sized + Serialize>(value: &T) -> Vec<u8> {
    serialize_with(value, CompactFormatter)
}

/// [`to_go_json`], appended to `out`.
pub(crate) fn write_go_json<T: ?Sized + Serialize>(value: &T, out: &mut Vec<u8>) {
    serialize_into(value, CompactFormatter, out);
}

/// JSON indented by four spaces, like Go's `json.MarshalIndent(v, "", "    ")`.
pub(crate) fn to_go_json_pretty<T: ?Sized + Serialize>(value: &T) -> Vec<u8> {
    serialize_with(value, PrettyFormatter::with_indent(b"    "))
}

/// Compact JSON with object keys sorted at every level, like Go's marshalling
/// of a `map[string]interface{}` (the oracle of the results' writer).
#[cfg(test)]
pub(crate) fn to_go_json_sorted<T: ?Sized + Serialize>(value: &T) -> Vec<u8> {
    // `serde_json::Map` is a BTreeMap (byte-order keys) without `preserve_order`.
    let v = serde_json::to_value(value).expect("our types always convert to a JSON value");
    to_go_json(&v)
}

/// Looks up a struct field the way Go's `encoding/json` matches keys: the
/// exact key if present, else the case-insensitive match that sorts last
/// (libcni re-marshals maps with sorted keys before decoding, and the last
/// assignment wins).
pub(crate) fn get_ci<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    pick_ci(map.iter().map(|(k, v)| (k.as_str(), v)), field)
}

/// Go's field matching over `(key, value)` pairs: the exact key (the last
/// such pair), else the case-insensitive match that sorts last (of equal
/// keys, the last pair). One pass; every lookup (`get_ci`,
/// [`RawObject::get_ci`], [`tree::get_ci`]) goes through it.
fn pick_ci<'k, V>(entries: impl IntoIterator<Item = (&'k str, V)>, field: &str) -> Option<V> {
    let mut exact = None;
    let mut folded: Option<(&str, V)> = None;
    for (k, v) in entries {
        if k == field {
            exact = Some(v);
        } else if exact.is_none()
            && k.eq_ignore_ascii_case(field)
            && folded.as_ref().is_none_or(|(best, _)| k >= *best)
        {
            folded = Some((k, v));
        }
    }
    exact.or(folded.map(|(_, v)| v))
}

/// A JSON object kept as raw text: the keys in document order (an exact
/// duplicate replaces the earlier entry, as the last one wins in every JSON
/// decoder plugins use) and each value's original bytes.
#[derive(Debug, Clone)]
pub(crate) struct RawObject<'a> {
    pub(crate) entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Parses `text` as a JSON object.
    pub(crate) fn parse(text: &'a str) -> Result<RawObject<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The raw value of `key` under Go's matching rules (see [`get_ci`]).
    pub(crate) fn get_ci(&self, field: &str) -> Option<&'a RawValue> {
        pick_ci(self.entries.iter().map(|(k, v)| (k.as_ref(), *v)), field)
    }

    /// The raw value of exactly `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<RawObject<'a>, M::Error> {
                let mut entries: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::with_capacity(8);
                while let Some(k) = m.next_key::<CowStr<'a>>()? {
                    let v: &'a RawValue = m.next_value()?;
                    // Keys are unique so far: at most one earlier entry goes.
                    if let Some(i) = entries.iter().position(|(ek, _)| *ek == k.0) {
                        entries.remove(i);
                    }
                    entries.push((k.0, v));
                }
                Ok(RawObject { entries })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<CowStr<'a>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CowStr<'a>, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<CowStr<'a>, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// Appends `json` (valid JSON text) to `out` without insignificant whitespace.
/// Strings, numbers and literals are copied byte for byte.
pub(crate) fn compact_into(json: &str, out: &mut Vec<u8>) {
    let bytes = json.as_bytes();
    out.reserve(bytes.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.extend_from_slice(&bytes[run..i]);
            run = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

/// A JSON value's type, for error messages.
pub(crate) fn raw_type(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping() {
        let v = serde_json::json!({"a": "<b>&\u{2028}\u{2029}é\n\u{1}"});
        assert_eq!(
            String::from_utf8(to_go_json(&v)).unwrap(),
            r#"{"a":"\u003cb\u003e\u0026\u2028\u2029é\n\u0001"}"#
        );
    }

    #[test]
    fn go_strings_match_the_serde_path() {
        for s in [
            "",
            "plain",
            "<b>&\u{2028}\u{2029}é\n\u{1}",
            "\"\\/\u{8}\u{c}\r\t\u{1f}\u{7f}",
            "\u{2027}\u{202a}\u{e2}€",
            "ends with \u{2028}",
        ] {
            let mut out = Vec::new();
            write_go_str(s, &mut out);
            assert_eq!(out, to_go_json(s), "{s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn go_strings_match_the_serde_path_on_any_string(s in ".*", t in "[\\x00-\\x7f\u{2026}-\u{202a}<>&é]{0,40}") {
            for s in [s, t] {
                let mut out = b"x".to_vec();
                write_go_str(&s, &mut out);
                let mut want = b"x".to_vec();
                want.extend(to_go_json(&s));
                proptest::prop_assert_eq!(out, want);
            }
        }
    }

    #[test]
    fn pretty_uses_four_spaces() {
        let v = serde_json::json!({"a": [1, {}], "b": []});
        assert_eq!(
            String::from_utf8(to_go_json_pretty(&v)).unwrap(),
            "{\n    \"a\": [\n        1,\n        {}\n    ],\n    \"b\": []\n}"
        );
    }

    #[test]
    fn compact_keeps_strings_and_numbers() {
        let mut out = Vec::new();
        compact_into(
            "{ \"a b\" : [ 1.0 , 1E2, \"x \\\" y\" ] ,\n\t\"c\":12345678901234567890 }",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a b":[1.0,1E2,"x \" y"],"c":12345678901234567890}"#
        );
    }

    #[test]
    fn raw_object_injects_after_other_keys() {
        let text = r#"{"type":"bridge","name":"x","mtu":1.50,"name":"y","Name":"z"}"#;
        let o = RawObject::parse(text).unwrap();
        assert_eq!(o.entries.len(), 4);
        assert_eq!(o.get("name").unwrap().get(), r#""y""#);
        let mut out = Vec::new();
        crate::compact::CompactObject::new(text).write_with(
            &[("cniVersion", b"\"1.0.0\""), ("name", b"\"net\"")],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type":"bridge","mtu":1.50,"Name":"z","cniVersion":"1.0.0","name":"net"}"#
        );
    }

    #[test]
    fn case_insensitive_lookup_prefers_exact_then_sorted_last() {
        let o = RawObject::parse(r#"{"TYPE":"a","tyPe":"b"}"#).unwrap();
        assert_eq!(o.get_ci("type").unwrap().get(), r#""b""#);
        let o = RawObject::parse(r#"{"Type":"a","type":"b","tyPE":"c"}"#).unwrap();
        assert_eq!(o.get_ci("type").unwrap().get(), r#""b""#);
    }
}
