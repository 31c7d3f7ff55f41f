//! Reading the shape of legacy JSON: a JavaScript `Map` in either of its serializations, and
//! object fields with messages that name the field, what it must be and what it was.
//!
//! Every function returns `Err(message)`, a message meant for a person, without the file name
//! (the caller prefixes it).

use serde_json::{Map, Value};

/// A `Map` serialized as `[[key, value], ...]` (`JSON.stringify([...map])`) or as
/// `{key: value}` (`JSON.stringify(Object.fromEntries(map))`): its entries in file order.
/// Number keys are taken as their decimal text, as `Object.fromEntries` would write them.
pub(crate) fn map_entries(v: &Value) -> Result<Vec<(String, &Value)>, String> {
    match v {
        Value::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), v)).collect()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.as_array().map(Vec::as_slice) {
                Some([Value::String(k), v]) => Ok((k.clone(), v)),
                Some([Value::Number(k), v]) => Ok((k.to_string(), v)),
                Some([k, _]) => Err(format!("item {i}: the key must be a string, got {}", shown(k))),
                _ => Err(format!("item {i}: expected a [key, value] pair, got {}", shown(item))),
            })
            .collect(),
        other => Err(format!(
            "expected a Map serialized as an array of [key, value] pairs or as an object, got {}",
            shown(other)
        )),
    }
}

/// A value as it appears in the file, cut short when long.
pub(crate) fn shown(v: &Value) -> String {
    const MAX: usize = 60;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        s
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

/// An object's fields, read with messages that say where (`entry "s1:c2"`).
pub(crate) struct Fields<'a> {
    at: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// `v` as an object, or an error saying what it was instead.
    pub(crate) fn of(at: String, v: &'a Value) -> Result<Fields<'a>, String> {
        match v {
            Value::Object(map) => Ok(Fields { at, map }),
            other => Err(format!("{at}: expected an object, got {}", shown(other))),
        }
    }

    /// Where these fields are, for messages.
    pub(crate) fn at(&self) -> &str {
        &self.at
    }

    fn wrong(&self, name: &str, what: &str, got: &Value) -> String {
        format!("{}: {name} must be {what}, got {}", self.at, shown(got))
    }

    /// The field, `None` when it is absent or null.
    pub(crate) fn opt(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// The field, which must be present (null counts as a value of the wrong type).
    fn req(&self, name: &str) -> Result<&'a Value, String> {
        self.map.get(name).ok_or_else(|| format!("{}: {name} is missing", self.at))
    }

    /// A string field.
    pub(crate) fn string(&self, name: &str) -> Result<String, String> {
        match self.req(name)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.wrong(name, "a string", other)),
        }
    }

    /// A string field that may be absent or null.
    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<String>, String> {
        match self.opt(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(name, "a string", other)),
        }
    }

    /// A number field.
    pub(crate) fn number(&self, name: &str) -> Result<f64, String> {
        let v = self.req(name)?;
        v.as_f64().ok_or_else(|| self.wrong(name, "a number", v))
    }

    /// A number field that may be absent or null.
    pub(crate) fn opt_number(&self, name: &str) -> Result<Option<f64>, String> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.wrong(name, "a number", v)),
        }
    }

    /// A count: a whole number of at least 0 (JavaScript writes `3` or `3.0` alike).
    pub(crate) fn count(&self, name: &str) -> Result<u64, String> {
        let v = self.req(name)?;
        whole(v).ok_or_else(|| self.wrong(name, "a whole number >= 0", v))
    }

    /// A boolean field.
    pub(crate) fn boolean(&self, name: &str) -> Result<bool, String> {
        let v = self.req(name)?;
        v.as_bool().ok_or_else(|| self.wrong(name, "true or false", v))
    }

    /// A time: milliseconds since the Unix epoch (`Date.now()`), or an RFC 3339 string
    /// (`new Date().toISOString()`, which is what `JSON.stringify` makes of a `Date`).
    pub(crate) fn time_ms(&self, name: &str) -> Result<u64, String> {
        let v = self.req(name)?;
        let ms = match v {
            Value::String(s) => rfc3339_ms(s),
            other => whole(other),
        };
        ms.ok_or_else(|| {
            self.wrong(name, "milliseconds since 1970 or an RFC 3339 time (2024-05-01T12:00:00Z)", v)
        })
    }

    /// An array field; absent or null is an empty array when `optional`.
    pub(crate) fn array(&self, name: &str, optional: bool) -> Result<&'a [Value], String> {
        match (self.map.get(name), optional) {
            (None | Some(Value::Null), true) => Ok(&[]),
            (None, false) => Err(format!("{}: {name} is missing", self.at)),
            (Some(Value::Array(items)), _) => Ok(items),
            (Some(other), _) => Err(self.wrong(name, "an array", other)),
        }
    }

    /// An array of strings; absent or null is empty when `optional`.
    pub(crate) fn strings(&self, name: &str, optional: bool) -> Result<Vec<String>, String> {
        let items = self.array(name, optional)?;
        items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.wrong(name, "an array of strings", &Value::Array(items.to_vec())))
    }

    /// An object field.
    pub(crate) fn object(&self, name: &str) -> Result<&'a Map<String, Value>, String> {
        match self.req(name)? {
            Value::Object(m) => Ok(m),
            other => Err(self.wrong(name, "an object", other)),
        }
    }
}

/// A whole number >= 0 that fits in a u64 (as an integer or as an integral float).
fn whole(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    // 2^53: beyond it a float no longer holds every whole number, so it is not a count anyone
    // wrote on purpose.
    (f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_992.0).then_some(f as u64)
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (`2024-05-01T12:00:00Z`,
/// `2024-05-01T14:00:00.250+02:00`); `None` when it is not one, or is before 1970.
pub(crate) fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second, which RFC 3339 allows.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Milliseconds: the first three digits of the fraction, padded (".5" is 500 ms).
        let frac = &s[start..i];
        let first3: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = first3.parse::<i64>().ok()?;
    }
    let offset_minutes = match &s[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && sep(i + 3, b":") => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1_000 + millis).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_times_are_read_to_the_millisecond_with_their_offset() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms("2024-05-01T12:00:00Z"), Some(1_714_564_800_000));
        assert_eq!(rfc3339_ms("2024-05-01T12:00:00.000Z"), Some(1_714_564_800_000));
        assert_eq!(rfc3339_ms("2000-02-29T23:59:59z"), Some(951_868_799_000));
        assert_eq!(rfc3339_ms("2024-05-01T14:30:15.25+02:30"), Some(1_714_564_815_250));
        assert_eq!(rfc3339_ms("2024-05-01 12:00:00.123456-00:00"), Some(1_714_564_800_123));
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "1969-12-31T23:59:59Z",
            "2024-05-01T12:00:00Zjunk",
            "２０２４-05-01T12:00:00Z",
        ] {
            assert_eq!(rfc3339_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn both_map_serializations_give_the_same_entries() {
        let pairs = json!([["a", 1], ["b", {"x": 2}], [7, 3]]);
        let object = json!({"a": 1, "b": {"x": 2}, "7": 3});
        let mut p = map_entries(&pairs).unwrap();
        let mut o = map_entries(&object).unwrap();
        p.sort_by(|x, y| x.0.cmp(&y.0));
        o.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(p, o);
        assert_eq!(
            map_entries(&json!([["a", 1], ["b"]])).unwrap_err(),
            r#"item 1: expected a [key, value] pair, got ["b"]"#
        );
        assert_eq!(
            map_entries(&json!([[null, 1]])).unwrap_err(),
            "item 0: the key must be a string, got null"
        );
        assert!(map_entries(&json!(3)).unwrap_err().contains("got 3"));
    }

    #[test]
    fn field_errors_name_the_field_what_it_must_be_and_what_it_was() {
        let v = json!({"q": "x", "n": -1, "t": "yesterday", "tags": ["a", 1], "f": 2.5});
        let f = Fields::of("entry \"k\"".into(), &v).unwrap();
        assert_eq!(f.number("q").unwrap_err(), r#"entry "k": q must be a number, got "x""#);
        assert_eq!(f.number("missing").unwrap_err(), r#"entry "k": missing is missing"#);
        assert_eq!(f.count("n").unwrap_err(), r#"entry "k": n must be a whole number >= 0, got -1"#);
        assert_eq!(f.count("f").unwrap_err(), r#"entry "k": f must be a whole number >= 0, got 2.5"#);
        assert!(f.time_ms("t").unwrap_err().contains(r#"got "yesterday""#));
        assert!(f
            .strings("tags", false)
            .unwrap_err()
            .contains(r#"must be an array of strings, got ["a",1]"#));
        assert_eq!(f.strings("none", true).unwrap(), Vec::<String>::new());
        assert_eq!(Fields::of("x".into(), &json!([1])).err().unwrap(), "x: expected an object, got [1]");
        assert_eq!(shown(&json!("y".repeat(100))).len(), 63);
    }
}
