//! Filters and sorts to SQL over the JSON1 functions, exact where the catalog allows it.
//!
//! A condition on a path is translated only when no stored document holds an array on that path
//! or any prefix of it (the multikey flags in `orbstore_shapes`): then `json_type` and
//! `json_extract` see exactly one value, and the translation below follows
//! `docs/query-semantics.md` to the letter (type classes checked with `json_type`, so `true` is
//! never `1`, integers and reals compare numerically, strings by bytes). Anything else
//! (arrays on the path, object or array operands, keys SQLite's paths cannot spell) is left to
//! the core evaluator: the SQL then selects a superset and the rows are filtered exactly in Rust.
//!
//! Values are always bound parameters. Paths are spliced into the SQL as string literals (an
//! expression index is only used when the query repeats its expression with the same literal);
//! they are validated field paths, quoted for JSON and escaped for SQL, and a path with a
//! character either quoting cannot carry is never spliced.

use orbstore_core::shapes::Shapes;
use orbstore_core::sqltree::{self, all_conditions, and_all, SqlPiece, Translation};
use orbstore_core::{Condition, Direction, FieldPath, Filter, SortField};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;

/// SQL text with its parameters, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<SqlValue>,
}

impl Sql {
    fn lit(text: &str) -> Sql {
        Sql { text: text.to_owned(), params: Vec::new() }
    }
}

/// The translation of a filter.
#[derive(Debug, Clone)]
pub(crate) enum Where {
    /// Selects exactly the matching documents.
    Exact(Sql),
    /// Selects a superset; the rows must be filtered again.
    Superset(Sql),
}

impl Where {
    pub(crate) fn sql(&self) -> &Sql {
        match self {
            Where::Exact(s) | Where::Superset(s) => s,
        }
    }

    pub(crate) fn is_exact(&self) -> bool {
        matches!(self, Where::Exact(_))
    }
}

/// Translates a (validated) filter.
pub(crate) fn translate(filter: &Filter, shapes: &Shapes) -> Where {
    let mut leaf = |path: &FieldPath, conditions: &[Condition]| {
        all_conditions(conditions, |c| condition(path, c, shapes))
    };
    match sqltree::translate(filter, &mut leaf) {
        Some(Translation::Exact(c)) => Where::Exact(and_all(c)),
        Some(Translation::Superset(c)) => Where::Superset(and_all(c)),
        None => Where::Superset(Sql::lit("1")),
    }
}

impl SqlPiece for Sql {
    fn always() -> Sql {
        Sql::lit("1")
    }

    fn guard_text(&self) -> Option<&str> {
        self.params.is_empty().then_some(self.text.as_str())
    }

    fn join(parts: Vec<Sql>, sep: &str) -> Sql {
        let mut out = Sql::default();
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                out.text.push_str(sep);
            }
            out.text.push('(');
            out.text.push_str(&p.text);
            out.text.push(')');
            out.params.extend(p.params);
        }
        out
    }
}

/// `$."a"."b"` for a path, or `None` when a segment holds a character SQLite's JSON path
/// labels cannot carry.
pub(crate) fn json_path(path: &FieldPath) -> Option<String> {
    let mut out = String::from("$");
    for seg in path.segments() {
        if seg.contains(['"', '\\']) || seg.chars().any(char::is_control) {
            return None;
        }
        out.push_str(".\"");
        out.push_str(seg);
        out.push('"');
    }
    Some(out)
}

/// A JSON path as an SQL string literal.
pub(crate) fn literal(json_path: &str) -> String {
    format!("'{}'", json_path.replace('\'', "''"))
}

/// The type and value expressions of a path: `json_type(doc, '$."p"')` and
/// `json_extract(doc, '$."p"')`, or the `id` column for `_id`.
pub(crate) fn exprs(path: &FieldPath) -> Option<(String, String)> {
    if path.as_str() == "_id" {
        return Some(("'text'".to_owned(), "id".to_owned()));
    }
    let lit = literal(&json_path(path)?);
    Some((format!("json_type(doc, {lit})"), format!("json_extract(doc, {lit})")))
}

fn number_param(n: &serde_json::Number) -> SqlValue {
    match n.as_i64() {
        Some(i) => SqlValue::Integer(i),
        None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
    }
}

/// The type guard of a comparison: the value's class is `class`. Written with the same
/// expression as the indexes' class column, so that an index answers it without reading rows.
fn guard(t: &str, class: u8) -> String {
    format!("{} = {class}", class_expr(t))
}

/// Equality with a scalar, as conjuncts: never NULL for `null`, NULL (= no match) for a
/// missing field otherwise. Every form is written with the indexes' two expressions (the
/// class, then the value), so an index on the path answers it: `null` (or missing) is the
/// class being NULL, a boolean is the boolean class with `json_extract`'s 0 or 1.
fn eq(t: &str, v: &str, operand: &Value) -> Option<Vec<Sql>> {
    Some(match operand {
        // The value is NULL too then (`json_extract` of null or of nothing); saying so pins the
        // index's second column as well.
        Value::Null => {
            vec![Sql::lit(&format!("{} IS NULL", class_expr(t))), Sql::lit(&format!("{v} IS NULL"))]
        }
        Value::Bool(b) => vec![Sql::lit(&guard(t, BOOL)), Sql::lit(&format!("{v} = {}", u8::from(*b)))],
        Value::Number(n) => {
            vec![Sql::lit(&guard(t, NUMBER)), Sql { text: format!("{v} = ?"), params: vec![number_param(n)] }]
        }
        Value::String(s) => {
            vec![
                Sql::lit(&guard(t, STRING)),
                Sql { text: format!("{v} = ?"), params: vec![SqlValue::Text(s.clone())] },
            ]
        }
        Value::Array(_) | Value::Object(_) => return None,
    })
}

fn range(t: &str, v: &str, op: &str, operand: &Value, inclusive: bool) -> Option<Vec<Sql>> {
    let (class, param) = match operand {
        Value::Null if inclusive => return eq(t, v, operand),
        Value::Null => return Some(vec![Sql::lit("0")]),
        // json_extract gives 0 and 1 for false and true: within the boolean class that is the order.
        Value::Bool(b) => (BOOL, SqlValue::Integer(i64::from(*b))),
        Value::Number(n) => (NUMBER, number_param(n)),
        Value::String(s) => (STRING, SqlValue::Text(s.clone())),
        Value::Array(_) | Value::Object(_) => return None,
    };
    Some(vec![Sql::lit(&guard(t, class)), Sql { text: format!("{v} {op} ?"), params: vec![param] }])
}

/// NOT of conjuncts whose NULL means "no match".
fn not(conjuncts: Vec<Sql>) -> Vec<Sql> {
    let inner = and_all(conjuncts);
    vec![Sql { text: format!("NOT IFNULL(({}), 0)", inner.text), params: inner.params }]
}

/// `$in`: the strings in one `IN` list under one type guard, the numbers in another, and
/// `null` and booleans as equalities, joined by `OR`. One `OR` branch per operand would hit
/// SQLite's expression depth limit (1,000) at a few hundred operands, which retention's
/// 1,000-id deletes reach.
fn any_of(t: &str, v: &str, operands: &[Value]) -> Option<Vec<Sql>> {
    if operands.is_empty() {
        return Some(vec![Sql::lit("0")]);
    }
    let mut parts = Vec::new();
    let (mut strings, mut numbers) = (Vec::new(), Vec::new());
    for o in operands {
        match o {
            Value::String(s) => strings.push(SqlValue::Text(s.clone())),
            Value::Number(n) => numbers.push(number_param(n)),
            other => parts.push(and_all(eq(t, v, other)?)),
        }
    }
    for (class, params) in [(STRING, strings), (NUMBER, numbers)] {
        if params.is_empty() {
            continue;
        }
        let marks = vec!["?"; params.len()].join(", ");
        parts.push(and_all(vec![
            Sql::lit(&guard(t, class)),
            Sql { text: format!("{v} IN ({marks})"), params },
        ]));
    }
    Some(vec![Sql::join(parts, " OR ")])
}

fn condition(path: &FieldPath, c: &Condition, shapes: &Shapes) -> Option<Vec<Sql>> {
    if !shapes.single_valued(path) {
        return None;
    }
    let (t, v) = exprs(path)?;
    match c {
        Condition::Eq(o) => eq(&t, &v, o),
        Condition::Ne(o) => eq(&t, &v, o).map(not),
        Condition::Gt(o) => range(&t, &v, ">", o, false),
        Condition::Gte(o) => range(&t, &v, ">=", o, true),
        Condition::Lt(o) => range(&t, &v, "<", o, false),
        Condition::Lte(o) => range(&t, &v, "<=", o, true),
        Condition::In(os) => any_of(&t, &v, os),
        Condition::Nin(os) => any_of(&t, &v, os).map(not),
        Condition::Exists(true) => Some(vec![Sql::lit(&format!("{t} IS NOT NULL"))]),
        Condition::Exists(false) => Some(vec![Sql::lit(&format!("{t} IS NULL"))]),
        Condition::Not(cs) => {
            let mut conj = Vec::new();
            for c in cs {
                conj.extend(condition(path, c, shapes)?);
            }
            Some(not(conj))
        }
    }
}

/// Class numbers of [`class_expr`].
const NUMBER: u8 = 1;
const STRING: u8 = 2;
const BOOL: u8 = 5;

/// The type-class expression of a path, as indexed: NULL for null and missing (so unique indexes
/// do not constrain those documents), else the class's rank in the sort order.
pub(crate) fn class_expr(t: &str) -> String {
    format!(
        "CASE {t} WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'object' THEN 3 \
         WHEN 'array' THEN 4 WHEN 'false' THEN 5 WHEN 'true' THEN 5 END"
    )
}

/// `ORDER BY` for sort keys (then `id`), when every key has one value that is not an object or
/// array in every document; `None` sends the sort to Rust. `filter` is the exactly translated
/// filter: a sort key whose type class it pins is ordered by its value alone, which lets an
/// index whose leading columns the filter's equalities pin serve the sort (SQLite does not
/// see that the class expression is constant under its own equality).
pub(crate) fn order_by(sort: &[SortField], shapes: &Shapes, filter: &Filter) -> Option<String> {
    let mut parts = Vec::new();
    for s in sort {
        let dir = if s.direction == Direction::Descending { "DESC" } else { "ASC" };
        if s.path.as_str() == "_id" {
            parts.push(format!("id {dir}"));
            continue;
        }
        if !shapes.single_valued(&s.path) || shapes.objects.contains(s.path.as_str()) {
            return None;
        }
        let (t, v) = exprs(&s.path)?;
        if sqltree::pinned_class(filter, &s.path).is_some() {
            parts.push(format!("{v} {dir}"));
            continue;
        }
        // The indexes' class expression, so that an index whose leading columns are pinned by
        // equalities serves the sort: it is NULL for null and missing, which SQLite orders
        // first ascending and last descending, as rank 0 would be.
        parts.push(format!("{} {dir}, {v} {dir}", class_expr(&t)));
    }
    parts.push("id ASC".to_owned());
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(f: Value, shapes: &Shapes) -> Where {
        translate(&Filter::from_json(&f).unwrap(), shapes)
    }

    #[test]
    fn scalar_conditions_translate_exactly_with_bound_values() {
        let w = t(json!({"score": {"$gte": 0.5, "$lt": 1}, "user": "u'1"}), &Shapes::default());
        let Where::Exact(sql) = w else { panic!("{w:?}") };
        assert!(sql.text.contains("json_extract(doc, '$.\"score\"') >= ?"), "{}", sql.text);
        assert!(!sql.text.contains("u'1"), "values are never spliced: {}", sql.text);
        assert_eq!(sql.params, vec![SqlValue::Real(0.5), SqlValue::Integer(1), SqlValue::Text("u'1".into())]);
    }

    #[test]
    fn arrays_on_the_path_fall_back_to_the_evaluator() {
        let mut shapes = Shapes::default();
        shapes.learn(json!({"tags": ["x"], "p": {"q": [1]}}).as_object().unwrap());
        assert!(!t(json!({"tags": "x"}), &shapes).is_exact());
        assert!(!t(json!({"p.q.r": 1}), &shapes).is_exact());
        assert!(t(json!({"p.z": 1}), &shapes).is_exact());
        assert!(
            matches!(t(json!({"$or": [{"tags": "x"}, {"a": 1}]}), &shapes), Where::Superset(s) if s.text == "1")
        );
        let w = t(json!({"tags": "x", "a": 1}), &shapes);
        assert!(matches!(&w, Where::Superset(s) if s.text.contains("\"a\"")), "{w:?}");
    }

    #[test]
    fn hostile_paths_are_quoted_or_refused() {
        assert_eq!(literal(&json_path(&FieldPath::new("it's")).unwrap()), "'$.\"it''s\"'");
        assert!(json_path(&FieldPath::new("a\"b")).is_none());
        assert!(!t(json!({"a\"b": 1}), &Shapes::default()).is_exact());
    }
}
