//! Documents to and from the `json` column, with numbers PostgreSQL compares exactly.
//!
//! Queries compare numbers as `numeric`, parsed from the stored text. serde_json writes a float
//! in its shortest round-trip form, which for an integral float beyond 2^53 is not its exact
//! value (`2^60` prints as `1.152921504606847e18`), so an integer near it would compare wrongly.
//! The writer here prints such floats in full (`1152921504606846976.0`); every other number keeps
//! serde_json's form, whose decimal order is the numbers' order (proved in `docs/architecture.md`).
//! The text parses back to the same `f64`, so documents round-trip unchanged.
//!
//! PostgreSQL's JSON functions refuse a document holding `\u0000` anywhere (no PostgreSQL text
//! can carry U+0000), so the writer stores U+0000 in strings and keys as U+0001 U+0001, and
//! U+0001 as U+0001 U+0002; the reader maps them back. The mapping is one-to-one and keeps the
//! byte order of strings, so SQL compares stored strings exactly as the originals compare, with
//! parameters mapped the same way ([`stored_string`]).

use std::io;

use bytes::BufMut;
use orbstore_core::{Document, StoredDocument};
use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use serde_json::Value;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// serde_json's compact output, but integral floats from 2^53 up to 2^65 (the range where an
/// i64 or u64 can sit between a float and its shortest form) are written exactly.
struct ExactFloats;

/// 2^53: below it every integer is a float, so shortest forms cannot cross an integer.
const EXACT_FROM: f64 = 9_007_199_254_740_992.0;
/// 2^65: above it no i64 or u64 is near enough to matter.
const EXACT_TO: f64 = 36_893_488_147_419_103_232.0;

impl Formatter for ExactFloats {
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        match escape {
            CharEscape::AsciiControl(0) => writer.write_all(b"\\u0001\\u0001"),
            CharEscape::AsciiControl(1) => writer.write_all(b"\\u0001\\u0002"),
            other => CompactFormatter.write_char_escape(writer, other),
        }
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        match exact_integral(value) {
            Some(text) => writer.write_all(text.as_bytes()),
            None => CompactFormatter.write_f64(writer, value),
        }
    }
}

fn exact_integral(value: f64) -> Option<String> {
    let magnitude = value.abs();
    // Floats from 2^53 up are integral; `as i128` is exact below 2^65.
    (EXACT_FROM..EXACT_TO).contains(&magnitude).then(|| format!("{}.0", value as i128))
}

/// A JSON number as text PostgreSQL's `numeric` reads with its exact order.
pub(crate) fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64().filter(|_| n.is_f64()).and_then(exact_integral) {
        Some(text) => text,
        None => n.to_string(),
    }
}

/// A value's text as the writer stores it inside a document (what `->>` of an object or array
/// returns).
pub(crate) fn stored_text(v: &Value) -> String {
    let mut out = Vec::new();
    v.serialize(&mut serde_json::Serializer::with_formatter(&mut out, ExactFloats))
        .expect("serializing a Value into memory cannot fail");
    // The serializer writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

/// A string as the writer stores it: U+0000 as U+0001 U+0001, U+0001 as U+0001 U+0002.
pub(crate) fn stored_string(s: &str) -> String {
    if !s.contains(['\0', '\u{1}']) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    for ch in s.chars() {
        match ch {
            '\0' => out.push_str("\u{1}\u{1}"),
            '\u{1}' => out.push_str("\u{1}\u{2}"),
            other => out.push(other),
        }
    }
    out
}

/// The original of a stored string.
fn original_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1}' {
            match chars.next() {
                Some('\u{1}') => out.push('\0'),
                // '\u{2}', or (never written) anything else: the one-to-one inverse.
                _ => out.push('\u{1}'),
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Maps every stored string and key of a value back to its original.
fn restore(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\u{1}') => *s = original_string(s),
        Value::Array(items) => items.iter_mut().for_each(restore),
        Value::Object(map) => restore_map(map),
        _ => {}
    }
}

fn restore_map(map: &mut Document) {
    if map.keys().any(|k| k.contains('\u{1}')) {
        let old = std::mem::take(map);
        for (k, v) in old {
            map.insert(if k.contains('\u{1}') { original_string(&k) } else { k }, v);
        }
    }
    map.values_mut().for_each(restore);
}

/// Parses a stored document.
pub(crate) fn parse(raw: &[u8]) -> serde_json::Result<Document> {
    let mut doc: Document = serde_json::from_slice(raw)?;
    // The writer escapes U+0001 as `\u0001`: without that text nothing needs restoring.
    if memchr::memmem::find(raw, b"\\u0001").is_some() {
        restore_map(&mut doc);
    }
    Ok(doc)
}

/// A document bound to a `json` parameter or COPY column, serialized straight into the
/// driver's buffer (the binary form of `json` is its text).
#[derive(Debug)]
pub(crate) struct JsonRef<'a>(pub &'a Document);

impl ToSql for JsonRef<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mut ser = serde_json::Serializer::with_formatter(out.writer(), ExactFloats);
        self.0.serialize(&mut ser)?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }

    to_sql_checked!();
}

/// A document read from a `json` column, parsed straight from the wire bytes.
pub(crate) struct JsonDoc(pub Document);

impl<'a> FromSql<'a> for JsonDoc {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonDoc(parse(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }
}

/// A document read from a `json` column as its text, for a reader that parses it into its own
/// types ([`StoredDocument`]); a text holding the `\u0001` escape of the NUL mapping is parsed
/// here instead, since only the parsed form can restore the original strings.
pub(crate) struct StoredJson(pub StoredDocument);

impl<'a> FromSql<'a> for StoredJson {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if memchr::memmem::find(raw, b"\\u0001").is_some() {
            return Ok(StoredJson(StoredDocument::Parsed(parse(raw)?)));
        }
        Ok(StoredJson(StoredDocument::Json(std::str::from_utf8(raw)?.to_owned())))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What [`JsonRef`] writes.
    fn to_text(value: &Value) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::new();
        value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, ExactFloats))?;
        Ok(out)
    }

    #[test]
    fn large_integral_floats_are_written_exactly_and_read_back_the_same() {
        let doc = json!({"a": 1152921504606846976.0_f64, "b": 0.1, "c": 1.0, "d": -9007199254740992.0_f64, "e": 1e300});
        let text = String::from_utf8(to_text(&doc).unwrap()).unwrap();
        assert_eq!(text, r#"{"a":1152921504606846976.0,"b":0.1,"c":1.0,"d":-9007199254740992.0,"e":1e+300}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
        assert!(back["a"].is_f64());
    }

    #[test]
    fn nul_and_soh_are_stored_without_nul_and_restored() {
        let doc = json!({"a\u{0}": ["x\u{0}y", "\u{1}", "\u{1}\u{0}"], "b": {"c": "p\u{2}q"}});
        let text = to_text(&doc).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains("\\u0000"), "{}", String::from_utf8_lossy(&text));
        assert_eq!(Value::Object(parse(&text).unwrap()), doc);
        // Order kept: "\0" < "\u{1}" < "\u{2}" < "a".
        let keys: Vec<String> =
            ["\u{0}", "\u{1}", "\u{2}", "a", "\u{0}\u{0}", ""].iter().map(|s| stored_string(s)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        let mut originals: Vec<&str> = vec!["\u{0}", "\u{1}", "\u{2}", "a", "\u{0}\u{0}", ""];
        originals.sort();
        assert_eq!(sorted, originals.iter().map(|s| stored_string(s)).collect::<Vec<_>>());
    }

    #[test]
    fn number_text_matches_the_stored_form() {
        assert_eq!(number_text(&serde_json::Number::from(i64::MIN)), "-9223372036854775808");
        assert_eq!(
            number_text(&serde_json::Number::from_f64(1152921504606846976.0).unwrap()),
            "1152921504606846976.0"
        );
        assert_eq!(number_text(&serde_json::Number::from_f64(2.5).unwrap()), "2.5");
    }
}
