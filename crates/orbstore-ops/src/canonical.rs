//! The canonical form of a document, defined once: the bytes every content hash is taken over
//! and every archive line is written in.
//!
//! Two documents that orbstore treats as equal (`docs/query-semantics.md`: key order does not
//! matter, `1 == 1.0`) have the same canonical bytes, so the same data hashes the same on every
//! backend, whatever order or number types a driver hands back. The rules:
//!
//! - objects: keys sorted by code point (byte order of their UTF-8) at every depth;
//! - no whitespace anywhere;
//! - integers in decimal; a float with an integral value in the signed 64-bit range is written
//!   as that integer (`1.0` → `1`, `-0.0` → `0`), because it compares equal to the integer
//!   everywhere; any other float in the shortest form that reads back to the same `f64`
//!   (ryu's `format_finite`: `0.1`, `1.5e-7`, `1e300`);
//! - strings: `"` and `\` escaped with a backslash, `\b \f \n \r \t` for those control
//!   characters, `\u00xx` (lowercase hex) for the other characters below U+0020, everything else
//!   as its UTF-8 bytes (no `\u` escapes for non-ASCII, no escaped `/`).
//!
//! The hash of a collection is SHA-256 over each document's canonical bytes followed by `\n`,
//! in `_id` order: exactly the bytes of its `documents.jsonl` in an archive.

use orbstore_core::serde_json::{Number, Value};
use orbstore_core::Document;
use sha2::{Digest as _, Sha256};

/// The canonical bytes of a document.
pub fn to_bytes(doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_document(doc, &mut out);
    out
}

/// Appends the canonical bytes of a document to `out`.
pub fn write_document(doc: &Document, out: &mut Vec<u8>) {
    write_object(doc, out);
}

/// Appends the canonical bytes of any JSON value to `out`.
pub fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn write_object(map: &orbstore_core::serde_json::Map<String, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    // serde_json's map is sorted unless its `preserve_order` feature is on somewhere in the
    // build: then (and only then) the keys are sorted here, so the form never depends on it.
    if map.keys().is_sorted() {
        write_members(map.iter(), out);
    } else {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        write_members(entries.into_iter(), out);
    }
    out.push(b'}');
}

fn write_members<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_value(value, out);
    }
}

fn write_number(n: &Number, out: &mut Vec<u8>) {
    let mut ints = itoa::Buffer::new();
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(ints.format(i).as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(ints.format(u).as_bytes());
    } else if let Some(f) = n.as_f64() {
        write_float(f, out);
    } else {
        // Only reachable with serde_json's `arbitrary_precision`; its text is the best we have.
        out.extend_from_slice(n.to_string().as_bytes());
    }
}

/// 2^63 as an `f64`: floats in `[-2^63, 2^63)` with no fraction convert to `i64` exactly.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

fn write_float(f: f64, out: &mut Vec<u8>) {
    if !f.is_finite() {
        // serde_json cannot hold NaN or infinities; JSON has no spelling for them.
        out.extend_from_slice(b"null");
    } else if f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) {
        out.extend_from_slice(itoa::Buffer::new().format(f as i64).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // Bytes of multi-byte UTF-8 sequences are all >= 0x80, so a byte-wise scan is safe.
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The count, size and content hash of a collection, fed its documents' canonical lines in
/// `_id` order.
#[derive(Clone, Default)]
pub struct ContentHasher {
    sha: Sha256,
    count: u64,
    bytes: u64,
}

/// What a [`ContentHasher`] computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDigest {
    /// How many documents.
    pub count: u64,
    /// The bytes of their canonical lines, each `\n` included.
    pub bytes: u64,
    /// SHA-256 over those lines, in lowercase hex.
    pub sha256: String,
}

impl ContentHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> ContentHasher {
        ContentHasher::default()
    }

    /// Feeds one document.
    pub fn add_document(&mut self, doc: &Document) {
        let mut line = to_bytes(doc);
        line.push(b'\n');
        self.add_line(&line);
    }

    /// Feeds one canonical line, its final `\n` included.
    pub fn add_line(&mut self, line: &[u8]) {
        self.sha.update(line);
        self.count += 1;
        self.bytes += line.len() as u64;
    }

    /// The digest so far.
    pub fn finish(self) -> ContentDigest {
        ContentDigest { count: self.count, bytes: self.bytes, sha256: hex::encode(self.sha.finalize()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbstore_core::serde_json::json;

    fn canon(v: Value) -> String {
        let mut out = Vec::new();
        write_value(&v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_float_parses_back_to_the_same_canonical_bytes() {
        // 20,000 finite floats from all over the bit space (a fixed xorshift sequence), and the
        // 17-digit ones arithmetic makes: each line parsed and written again is the same bytes
        // (this needs serde_json's exact float parsing, `float_roundtrip`).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut floats = vec![-0.45399999999999996, 0.1 + 0.2, 1.0 / 3.0, 5e-324, 1.7976931348623157e308];
        while floats.len() < 20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                floats.push(f);
            }
        }
        for f in floats {
            let doc = json!({"_id": "a", "f": f}).as_object().unwrap().clone();
            let line = to_bytes(&doc);
            let back: Document = serde_json::from_slice(&line).unwrap();
            assert_eq!(to_bytes(&back), line, "{f:e} ({:#x})", f.to_bits());
        }
    }

    #[test]
    fn keys_are_sorted_at_every_depth_without_whitespace() {
        assert_eq!(
            canon(json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "é": null, "Z": true}})),
            r#"{"a":{"Z":true,"z":[{"x":2,"y":1}],"é":null},"b":1}"#
        );
    }

    #[test]
    fn integral_floats_are_integers_and_others_are_shortest() {
        assert_eq!(
            canon(json!([1.0, -0.0, 1, 2.5, 0.1, 1e300, -1.5e-7, 1e19, -(2f64.powi(63))])),
            "[1,0,1,2.5,0.1,1e300,-1.5e-7,1e19,-9223372036854775808]"
        );
        assert_eq!(
            canon(json!([i64::MIN, i64::MAX, u64::MAX])),
            format!("[{},{},{}]", i64::MIN, i64::MAX, u64::MAX)
        );
        // 2^63 is out of the i64 range: it stays a float.
        assert_eq!(canon(json!(2f64.powi(63))), "9.223372036854776e18");
    }

    #[test]
    fn every_float_reads_back_to_itself() {
        for f in [0.1, 1.0 / 3.0, 5e-324, f64::MAX, f64::MIN_POSITIVE, 123456.789e10, -2.5e-300] {
            let s = canon(json!(f));
            let back: f64 = s.parse().unwrap();
            assert_eq!(back, f, "{s}");
        }
    }

    #[test]
    fn strings_are_escaped_one_way() {
        assert_eq!(
            canon(json!("a\"b\\c\n\t\r\u{8}\u{c}\u{1}\u{1f}/é😀\u{7f}\u{2028}")),
            "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/é😀\u{7f}\u{2028}\""
        );
    }

    #[test]
    fn canonical_bytes_are_json_that_reads_back_equal() {
        let v = json!({"k": ["x\u{0}y", {"n": -12, "f": 0.25}], "ключ": "значение", "e": {}, "a": []});
        let s = canon(v.clone());
        let back: Value = orbstore_core::serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
        assert_eq!(canon(back), s);
    }

    #[test]
    fn the_same_content_in_other_forms_hashes_the_same() {
        let a = json!({"_id": "1", "n": 1, "o": {"x": 2.0, "y": [1, 2]}});
        let b = json!({"o": {"y": [1.0, 2.0], "x": 2}, "n": 1.0, "_id": "1"});
        let mut ha = ContentHasher::new();
        ha.add_document(a.as_object().unwrap());
        let mut hb = ContentHasher::new();
        hb.add_document(b.as_object().unwrap());
        assert_eq!(ha.finish(), hb.finish());
    }

    #[test]
    fn the_hash_of_nothing_is_the_sha256_of_nothing() {
        let d = ContentHasher::new().finish();
        assert_eq!((d.count, d.bytes), (0, 0));
        assert_eq!(d.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
