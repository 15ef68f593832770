//! A JSON value that borrows its strings from the input: what the hot paths
//! (a plugin's result, a cache entry) are parsed into instead of a
//! `serde_json::Value`.
//!
//! Strings without escapes are slices of the input; an object is its
//! members in document order, duplicates kept, so that Go's field matching
//! ([`get_ci`]) is a scan of a short vector. It is parsed by serde_json's
//! own parser with the same visitor calls `Value` gets, so the same inputs
//! are accepted and rejected, with the same errors (a number out of `f64`
//! range, a lone surrogate, the nesting limit), and numbers are the same
//! [`Number`]s. One difference: `Value`, with serde_json's `raw_value`
//! feature, reads an object whose first key is serde_json's private raw
//! value token as the JSON text of its value; here it is an ordinary key,
//! as in Go.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::CowStr;

/// An object's members in document order (duplicates kept).
pub(crate) type Object<'a> = [(Cow<'a, str>, Json<'a>)];

/// A parsed JSON value; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses `bytes` (one JSON value, whitespace around it allowed).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        // UTF-8 (the usual case) is checked once for the whole input, so
        // that serde_json skips its check of each string; otherwise the
        // byte parser reports the error where it is, as for a `Value`.
        match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        }
    }

    /// The value's type, for error messages (as `version::json_type`).
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// The same value as a `serde_json::Value` (of an object's duplicate
    /// keys, the last one wins, as when parsing into a `Value`).
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.as_ref().to_owned()),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(m) => Value::Object(to_map(m)),
        }
    }
}

/// An object's members as a `serde_json::Map` (the last duplicate wins).
pub(crate) fn to_map(obj: &Object<'_>) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in obj {
        map.insert(k.as_ref().to_owned(), v.to_value());
    }
    map
}

/// Looks up a struct field the way Go's `encoding/json` matches keys, as
/// [`super::get_ci`] does on a `Map`: the exact key if present (its last
/// occurrence), else the case-insensitive match that sorts last (of equal
/// keys, the last occurrence).
pub(crate) fn get_ci<'t, 'a>(obj: &'t Object<'a>, field: &str) -> Option<&'t Json<'a>> {
    super::pick_ci(obj.iter().map(|(k, v)| (k.as_ref(), v)), field)
}

/// The value of exactly `key` (its last occurrence), as `Map::get` finds it.
pub(crate) fn get<'t, 'a>(obj: &'t Object<'a>, key: &str) -> Option<&'t Json<'a>> {
    obj.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor(std::marker::PhantomData))
    }
}

struct JsonVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json<'a>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'a>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'a>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'a>, E> {
        // As `Value`: a non-finite float (which the parser never yields) is null.
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'a>, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Json<'a>, S::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Json<'a>, M::Error> {
        let mut members = Vec::new();
        while let Some(k) = m.next_key::<CowStr<'a>>()? {
            let v: Json<'a> = m.next_value()?;
            members.push((k.0, v));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Json<'_> {
        Json::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn obj<'t, 'a>(j: &'t Json<'a>) -> &'t Object<'a> {
        match j {
            Json::Object(m) => m,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let j = parse(r#"{"a":"plain","b\n":"x\"y","c":"\u00e9\ud83d\ude00"}"#);
        let m = obj(&j);
        assert!(matches!(&m[0].0, Cow::Borrowed("a")));
        assert!(matches!(&m[0].1, Json::String(Cow::Borrowed("plain"))));
        assert!(matches!(&m[1].0, Cow::Owned(k) if k == "b\n"));
        assert!(matches!(&m[1].1, Json::String(Cow::Owned(s)) if s == "x\"y"));
        assert_eq!(m[2].1, Json::String("é😀".into()));
    }

    #[test]
    fn duplicates_are_kept_and_lookups_follow_go() {
        let j = parse(r#"{"a":1,"A":2,"a":3,"B":4,"b":null}"#);
        let m = obj(&j);
        assert_eq!(m.len(), 5);
        // The exact key's last occurrence.
        assert_eq!(get_ci(m, "a"), Some(&Json::Number(3.into())));
        assert_eq!(get(m, "a"), Some(&Json::Number(3.into())));
        // The exact key, even when null.
        assert_eq!(get_ci(m, "b"), Some(&Json::Null));
        // No exact key: the case-insensitive match that sorts last.
        let j = parse(r#"{"tyPe":1,"TYPE":2,"Type":3}"#);
        assert_eq!(get_ci(obj(&j), "type"), Some(&Json::Number(1.into())));
        // Of equal keys that sort last, the last occurrence.
        let j = parse(r#"{"tyPe":1,"TYPE":2,"tyPe":3}"#);
        assert_eq!(get_ci(obj(&j), "type"), Some(&Json::Number(3.into())));
        assert_eq!(get_ci(obj(&j), "typ"), None);
        assert_eq!(get(obj(&j), "type"), None);
    }

    #[test]
    fn numbers_are_values_numbers() {
        for s in [
            "0",
            "-0",
            "1",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.5",
            "1e2",
            "1E-2",
            "123456789012345678901234567890",
            "1.7976931348623157e308",
            "5e-324",
        ] {
            let want: Value = serde_json::from_str(s).unwrap();
            assert_eq!(parse(s).to_value(), want, "{s}");
            let Json::Number(n) = parse(s) else {
                panic!("{s}")
            };
            assert_eq!(n.to_string(), want.to_string(), "{s}");
        }
        // Out of range is an error, as for Value.
        let e = Json::parse(b"1e400").unwrap_err();
        assert_eq!(
            e.to_string(),
            serde_json::from_str::<Value>("1e400")
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn invalid_input_fails_as_value_does() {
        let mut deep = "[".repeat(200);
        deep.push_str(&"]".repeat(200));
        for bad in [
            "",
            " ",
            "{",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1,]",
            "nul",
            "\"\\ud800\"",
            "\"\\x\"",
            "\"a\u{1}\"",
            "{} {}",
            "{1:2}",
            "01",
            "\u{feff}{}",
            deep.as_str(),
        ] {
            let ours = Json::parse(bad.as_bytes()).unwrap_err();
            let theirs = serde_json::from_str::<Value>(bad).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{bad:?}");
            assert_eq!(ours.classify(), theirs.classify(), "{bad:?}");
        }
        // Invalid UTF-8, in a string or elsewhere: the byte parser's error.
        for bad in [
            &b"\xff"[..],
            b"{\"a\":\"\xff\"}",
            b"{\"a\xc3\":1}",
            b"[\"ok\", \xe2\x80]",
            b"\"\xed\xa0\x80\"",
        ] {
            let ours = Json::parse(bad).unwrap_err();
            let theirs = serde_json::from_slice::<Value>(bad).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{bad:?}");
        }
    }

    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            "-?[1-9][0-9]{0,29}(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,2})?",
            "\"([a-zA-Z /<&]|\\\\[nt\"\\\\/]|\\\\u00[0-9a-f]{2}|é)*\"",
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[aAbB]{1,2}|\"", inner), 0..6).prop_map(|m| {
                    let members: Vec<String> = m
                        .into_iter()
                        .map(|(k, v)| {
                            let k = if k == "\"" { "\\\"".to_owned() } else { k };
                            format!(" \"{k}\" : {v} ")
                        })
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn value_get_ci<'v>(v: &'v Value, field: &str) -> Option<&'v Value> {
        crate::json::get_ci(v.as_object()?, field)
    }

    proptest! {
        #[test]
        fn parses_as_value_does(text in json_text()) {
            let want: Value = serde_json::from_str(&text).unwrap();
            let got = Json::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(got.to_value(), want.clone());
            // Go's field matching agrees with the Map version for every key
            // spelling.
            if let Json::Object(m) = &got {
                for field in ["a", "A", "b", "B", "ab", "aB", "Ab", "AB", "ba", "\"", "x"] {
                    let ci = get_ci(m, field).map(Json::to_value);
                    prop_assert_eq!(ci.as_ref(), value_get_ci(&want, field), "{}", field);
                    let exact = get(m, field).map(Json::to_value);
                    prop_assert_eq!(exact.as_ref(), want.get(field), "{}", field);
                }
            }
        }

        #[test]
        fn rejects_what_value_rejects(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let ours = Json::parse(&bytes).map(|j| j.to_value()).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string());
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn rejects_what_value_rejects_jsonish(text in "[\\[\\]{}\",:0-9.eE+\\-a-z\\\\ ]{0,24}") {
            let ours = Json::parse(text.as_bytes()).map(|j| j.to_value()).map_err(|e| e.to_string());
            let theirs = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string());
            prop_assert_eq!(ours, theirs);
        }
    }
}
