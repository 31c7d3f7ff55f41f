//! The total order of values (MongoDB's BSON order for JSON types) and numeric equality.
//!
//! One place for this logic: filters, sort and unique indexes all use it.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// The type classes of the order, lowest first. Values of different classes never satisfy a
/// range condition (type bracketing); in a sort they order by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeClass {
    /// `null`, and a missing field.
    Null,
    /// Integers and floats together.
    Number,
    /// Strings.
    String,
    /// Objects.
    Object,
    /// Arrays.
    Array,
    /// Booleans.
    Bool,
}

impl TypeClass {
    /// The class of a value; `None` (a missing field) is [`TypeClass::Null`].
    pub fn of(value: Option<&Value>) -> TypeClass {
        match value {
            None | Some(Value::Null) => TypeClass::Null,
            Some(Value::Number(_)) => TypeClass::Number,
            Some(Value::String(_)) => TypeClass::String,
            Some(Value::Object(_)) => TypeClass::Object,
            Some(Value::Array(_)) => TypeClass::Array,
            Some(Value::Bool(_)) => TypeClass::Bool,
        }
    }
}

/// Compares two values in the total order; `None` stands for a missing field and equals `null`.
pub fn compare_optional(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let (ca, cb) = (TypeClass::of(a), TypeClass::of(b));
    if ca != cb {
        return ca.cmp(&cb);
    }
    match (a, b) {
        (Some(a), Some(b)) => compare_same_class(a, b),
        _ => Ordering::Equal, // both null or missing
    }
}

/// Compares two present values in the total order.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    compare_optional(Some(a), Some(b))
}

/// Whether two values are equal in the order's sense: `1 == 1.0`, objects regardless of key
/// order, arrays element by element.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

fn compare_same_class(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare_values(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            // Pair by pair in key order. Sorted explicitly: serde_json's maps iterate in
            // insertion order when its `preserve_order` feature is on (the MongoDB driver's
            // `bson` turns it on for the whole build).
            let (xs, ys) = (sorted_entries(x), sorted_entries(y));
            for ((ka, va), (kb, vb)) in xs.iter().zip(&ys) {
                let o = TypeClass::of(Some(va))
                    .cmp(&TypeClass::of(Some(vb)))
                    .then_with(|| ka.cmp(kb))
                    .then_with(|| compare_values(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => Ordering::Equal, // same class: only null/null reaches here
    }
}

/// A map's entries in key order, whatever order the map iterates in.
fn sorted_entries(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    entries
}

/// Compares two JSON numbers exactly, also between integers and floats
/// (`9007199254740993` is greater than `9007199254740992.0`, which `as f64` would get wrong).
pub fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => compare_int_float(x, b.as_f64().unwrap_or(0.0)),
        (None, Some(y)) => compare_int_float(y, a.as_f64().unwrap_or(0.0)).reverse(),
        (None, None) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            // JSON numbers are finite, so partial_cmp only fails on NaN, which cannot occur.
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

fn as_int(n: &Number) -> Option<i128> {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

fn compare_int_float(i: i128, f: f64) -> Ordering {
    // Every i64/u64 lies strictly inside (-2^127, 2^127); floats outside that range are
    // simply larger or smaller.
    const LIMIT: f64 = 1.7e38;
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f <= -LIMIT {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => {
            let frac = f - whole;
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

/// A value with the total order as its `Ord`, for keys of ordered maps (unique indexes).
#[derive(Debug, Clone)]
pub struct OrdValue(pub Value);

impl PartialEq for OrdValue {
    fn eq(&self, other: &Self) -> bool {
        values_equal(&self.0, &other.0)
    }
}
impl Eq for OrdValue {}
impl PartialOrd for OrdValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdValue {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_values(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_as_numbers() {
        assert!(values_equal(&json!(1), &json!(1.0)));
        assert_eq!(compare_values(&json!(1), &json!(1.5)), Ordering::Less);
        assert_eq!(compare_values(&json!(-1.5), &json!(-1)), Ordering::Less);
        assert_eq!(compare_values(&json!(2), &json!(1.5)), Ordering::Greater);
        // beyond f64 precision
        assert_eq!(
            compare_values(&json!(9_007_199_254_740_993_i64), &json!(9_007_199_254_740_992.0)),
            Ordering::Greater
        );
        assert_eq!(compare_values(&json!(i64::MAX), &json!(1e300)), Ordering::Less);
        assert_eq!(compare_values(&json!(i64::MIN), &json!(-1e300)), Ordering::Greater);
    }

    #[test]
    fn classes_order_like_bson() {
        let ordered = [
            json!(null),
            json!(-5),
            json!(3.5),
            json!(""),
            json!("b"),
            json!({}),
            json!({"a": 1}),
            json!([]),
            json!([1]),
            json!(false),
            json!(true),
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare_values(&w[0], &w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(compare_optional(None, Some(&json!(null))), Ordering::Equal);
    }

    #[test]
    fn objects_compare_regardless_of_written_order() {
        let a: Value = serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y":2,"x":1.0}"#).unwrap();
        assert!(values_equal(&a, &b));
        assert!(!values_equal(&json!([1, 2]), &json!([2, 1])));
    }
}
