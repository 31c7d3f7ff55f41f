//! Filters and sorts to SQL over the `json` column, exact where the multikey flags allow it.
//!
//! A path with no array on the way (see [`Shapes`]) has one value per document. Each such value
//! is read through three expressions (or, for an indexed path, the typed columns holding their
//! values: `crate::layout`, which is what indexes are built over):
//!
//! - the **class** ([`class`]): the rank of its type class in the sort order (1 number, 2 string,
//!   3 object, 4 array, 5 boolean), NULL for null and missing;
//! - the **number** ([`num`]): the value as `numeric` for numbers, 0/1 for booleans, 0 otherwise;
//! - the **string** ([`string`]): the text for strings (and JSON text for objects and arrays),
//!   `''` otherwise, in the "C" collation (byte order, which is code point order in UTF-8).
//!
//! A comparison is `class = k AND num/string op $n`, which is exactly `docs/query-semantics.md`'s
//! type bracketing (`true` is never `1`), numeric comparison of integers and floats, and byte
//! order of strings; and an index on `(class, num, string)` serves it as a bounded range.
//! Anything else (arrays on the path, object or array operands, keys with a NUL) is left to the
//! core evaluator: the SQL then selects a superset and the rows are filtered exactly in Rust.
//!
//! Values are always bound parameters (as text, cast in SQL). Paths are spliced as SQL string
//! literals, because an expression index is only used when the query repeats its expression
//! with the same literal; they are validated field paths with `'` doubled, and a key holding a
//! NUL (which no PostgreSQL string can carry) is never spliced.

use std::collections::HashSet;

use orbstore_core::shapes::Shapes;
use orbstore_core::sqltree::{self, all_conditions, and_all, SqlPiece, Translation};
use orbstore_core::{Condition, Direction, FieldPath, Filter, SortField};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::json::number_text;
use crate::layout::Layout;

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text; the SQL casts it where another type is meant (`$1::text::numeric`).
    Text(String),
    /// A 64-bit integer (LIMIT and OFFSET).
    Int(i64),
    /// An array of text.
    TextArray(Vec<String>),
}

impl Param {
    pub(crate) fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(s) => s,
            Param::Int(i) => i,
            Param::TextArray(a) => a,
        }
    }
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Param(Param),
}

/// SQL with its parameters in place; [`Sql::render`] numbers them `$1, $2, ...`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    parts: Vec<Part>,
}

impl Sql {
    pub(crate) fn lit(text: impl Into<String>) -> Sql {
        Sql { parts: vec![Part::Text(text.into())] }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        match self.parts.last_mut() {
            Some(Part::Text(t)) => t.push_str(text),
            _ => self.parts.push(Part::Text(text.to_owned())),
        }
        self
    }

    /// Appends a placeholder for `param`, followed by `cast` (`"::text"`, say).
    pub(crate) fn param(&mut self, param: Param, cast: &str) -> &mut Sql {
        self.parts.push(Part::Param(param));
        self.push(cast)
    }

    pub(crate) fn append(&mut self, other: Sql) -> &mut Sql {
        for p in other.parts {
            match p {
                Part::Text(t) => {
                    self.push(&t);
                }
                Part::Param(p) => self.parts.push(Part::Param(p)),
            }
        }
        self
    }

    /// The statement text and its parameters in order.
    pub(crate) fn render(&self) -> (String, Vec<Param>) {
        let mut text = String::new();
        let mut params = Vec::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => text.push_str(t),
                Part::Param(p) => {
                    params.push(p.clone());
                    text.push('$');
                    text.push_str(&params.len().to_string());
                }
            }
        }
        (text, params)
    }
}

/// The translation of a filter.
#[derive(Debug, Clone)]
pub(crate) struct Where {
    /// The WHERE condition.
    pub sql: Sql,
    /// It selects exactly the matching documents (else a superset, to filter again in Rust).
    pub exact: bool,
    /// Paths the translation assumed free of arrays, each prefix included.
    pub assumed_single: HashSet<String>,
}

/// Translates a (validated) filter.
pub(crate) fn translate(filter: &Filter, shapes: &Shapes, layout: &Layout) -> Where {
    let mut assumed = HashSet::new();
    let mut leaf = |path: &FieldPath, conditions: &[Condition]| {
        if path.as_str() != "_id" && (!shapes.single_valued(path) || expr(path).is_none()) {
            return None;
        }
        let conj = all_conditions(conditions, |c| condition(path, c, layout))?;
        assume_single(path, &mut assumed);
        Some(conj)
    };
    let (sql, exact) = match sqltree::translate(filter, &mut leaf) {
        Some(Translation::Exact(c)) => (and_all(c), true),
        Some(Translation::Superset(c)) => (and_all(c), false),
        None => (Sql::lit("TRUE"), false),
    };
    Where { sql, exact, assumed_single: assumed }
}

impl SqlPiece for Sql {
    fn always() -> Sql {
        Sql::lit("TRUE")
    }

    fn guard_text(&self) -> Option<&str> {
        // `push` merges adjacent text, so a piece without parameters is one text part.
        match self.parts.as_slice() {
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    fn join(parts: Vec<Sql>, sep: &str) -> Sql {
        let mut out = Sql::default();
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                out.push(sep);
            }
            out.push("(");
            out.append(p);
            out.push(")");
        }
        out
    }
}

/// Records a path and its prefixes as assumed free of arrays.
fn assume_single(path: &FieldPath, assumed: &mut HashSet<String>) {
    if path.as_str() == "_id" {
        return;
    }
    let mut prefix = String::new();
    for seg in path.segments() {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(seg);
        assumed.insert(prefix.clone());
    }
}

/// The path's JSON value and its text: `doc->'a'->'b'` and `doc->'a'->>'b'`, or `None` when a
/// key holds a NUL.
pub(crate) fn expr(path: &FieldPath) -> Option<(String, String)> {
    expr_over("doc", path)
}

/// [`expr`] over another document expression (`NEW.doc` in a trigger).
pub(crate) fn expr_over(doc: &str, path: &FieldPath) -> Option<(String, String)> {
    let segs: Vec<&str> = path.segments().collect();
    if segs.iter().any(|s| s.contains('\0')) {
        return None;
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut prefix = String::from(doc);
    for s in &segs[..segs.len() - 1] {
        prefix.push_str("->");
        prefix.push_str(&quote(s));
    }
    let last = quote(segs[segs.len() - 1]);
    Some((format!("{prefix}->{last}"), format!("{prefix}->>{last}")))
}

/// The class expression of a path (see the module docs).
pub(crate) fn class(e: &str) -> String {
    format!(
        "(CASE json_typeof({e}) WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 3 \
         WHEN 'array' THEN 4 WHEN 'boolean' THEN 5 END)"
    )
}

/// The number expression of a path.
pub(crate) fn num(e: &str, t: &str) -> String {
    format!("(CASE json_typeof({e}) WHEN 'number' THEN ({t})::numeric WHEN 'boolean' THEN ({t})::boolean::int ELSE 0 END)")
}

/// The string expression of a path.
pub(crate) fn string(e: &str, t: &str) -> String {
    format!(
        "((CASE json_typeof({e}) WHEN 'string' THEN {t} WHEN 'object' THEN {t} WHEN 'array' THEN {t} \
         ELSE '' END) COLLATE \"C\")"
    )
}

/// The three expressions of a path, in index order.
pub(crate) fn columns(path: &FieldPath) -> Option<[String; 3]> {
    let (e, t) = expr(path)?;
    Some([class(&e), num(&e, &t), string(&e, &t)])
}

/// A path's three values as a query reads them: its typed index columns when the layout has
/// them (`crate::layout`), else the expressions.
fn values(path: &FieldPath, layout: &Layout) -> Option<[String; 3]> {
    layout.columns(path).or_else(|| columns(path))
}

const NUMBER: u8 = 1;
const STRING: u8 = 2;
const BOOL: u8 = 5;

fn cmp(left: &str, op: &str, param: Param, cast: &str) -> Sql {
    let mut s = Sql::lit(format!("{left} {op} "));
    s.param(param, cast);
    s
}

/// A value of a class compared with `op`, as conjuncts; `None` for object and array operands.
fn compare(cols: &[String; 3], op: &str, operand: &Value) -> Option<Vec<Sql>> {
    let [c, n, s] = cols;
    // Each class's other column is a constant (`''` for booleans and numbers, `0` for strings),
    // and saying so pins every column of the path in an index: an equality on a leading field
    // then lets the index order the next one (a sort served by the index).
    Some(match operand {
        Value::Bool(b) => vec![
            Sql::lit(format!("{c} = {BOOL}")),
            Sql::lit(format!("{n} {op} {}", u8::from(*b))),
            Sql::lit(format!("{s} = ''")),
        ],
        Value::Number(x) => vec![
            Sql::lit(format!("{c} = {NUMBER}")),
            cmp(n, op, Param::Text(number_text(x)), "::text::numeric"),
            Sql::lit(format!("{s} = ''")),
        ],
        Value::String(x) => vec![
            Sql::lit(format!("{c} = {STRING}")),
            Sql::lit(format!("{n} = 0")),
            cmp(s, op, Param::Text(crate::json::stored_string(x)), "::text"),
        ],
        Value::Null | Value::Array(_) | Value::Object(_) => return None,
    })
}

/// A condition on `_id` (always a string, never null or missing).
fn id_condition(c: &Condition) -> Option<Vec<Sql>> {
    let op = |op: &str, operand: &Value, inclusive: bool| match operand {
        Value::String(s) => vec![cmp("id", op, Param::Text(s.clone()), "::text")],
        Value::Array(_) | Value::Object(_) => vec![Sql::lit("FALSE")],
        Value::Null if inclusive => vec![Sql::lit("FALSE")],
        _ => vec![Sql::lit("FALSE")],
    };
    Some(match c {
        Condition::Eq(o) => op("=", o, true),
        Condition::Ne(o) => not(op("=", o, true)),
        Condition::Gt(o) => op(">", o, false),
        Condition::Gte(o) => op(">=", o, true),
        Condition::Lt(o) => op("<", o, false),
        Condition::Lte(o) => op("<=", o, true),
        Condition::In(os) => vec![id_in(os)],
        Condition::Nin(os) => not(vec![id_in(os)]),
        Condition::Exists(b) => vec![Sql::lit(if *b { "TRUE" } else { "FALSE" })],
        Condition::Not(cs) => {
            let mut conj = Vec::new();
            for c in cs {
                conj.extend(id_condition(c)?);
            }
            not(conj)
        }
    })
}

/// `_id` among the operands: `id = ANY($n::text[])` over the string ones (no other operand
/// matches an `_id`), one parameter however long the list, instead of an `OR` per operand
/// (which PostgreSQL plans branch by branch: slow for the journal's 1,000-id deletes).
fn id_in(operands: &[Value]) -> Sql {
    let ids: Vec<String> = operands.iter().filter_map(|o| o.as_str().map(str::to_owned)).collect();
    if ids.is_empty() {
        return Sql::lit("FALSE");
    }
    let mut s = Sql::lit("id = ANY(");
    s.param(Param::TextArray(ids), "::text[])");
    s
}

fn eq(cols: &[String; 3], operand: &Value) -> Option<Vec<Sql>> {
    match operand {
        Value::Null => Some(vec![Sql::lit(format!("{} IS NULL", cols[0]))]),
        other => compare(cols, "=", other),
    }
}

fn range(cols: &[String; 3], op: &str, operand: &Value, inclusive: bool) -> Option<Vec<Sql>> {
    match operand {
        Value::Null if inclusive => eq(cols, operand),
        Value::Null => Some(vec![Sql::lit("FALSE")]),
        other => compare(cols, op, other),
    }
}

/// NOT of conjuncts whose NULL means "no match".
fn not(conjuncts: Vec<Sql>) -> Vec<Sql> {
    let inner = and_all(conjuncts);
    let mut s = Sql::lit("NOT COALESCE((");
    s.append(inner).push("), FALSE)");
    vec![s]
}

fn any_of(alternatives: impl Iterator<Item = Option<Vec<Sql>>>) -> Option<Sql> {
    let parts = alternatives.map(|a| a.map(and_all)).collect::<Option<Vec<_>>>()?;
    Some(if parts.is_empty() { Sql::lit("FALSE") } else { Sql::join(parts, " OR ") })
}

fn condition(path: &FieldPath, c: &Condition, layout: &Layout) -> Option<Vec<Sql>> {
    if path.as_str() == "_id" {
        return id_condition(c);
    }
    let (e, _) = expr(path)?;
    let cols = values(path, layout)?;
    match c {
        Condition::Eq(o) => eq(&cols, o),
        Condition::Ne(o) => eq(&cols, o).map(not),
        Condition::Gt(o) => range(&cols, ">", o, false),
        Condition::Gte(o) => range(&cols, ">=", o, true),
        Condition::Lt(o) => range(&cols, "<", o, false),
        Condition::Lte(o) => range(&cols, "<=", o, true),
        Condition::In(os) => Some(vec![any_of(os.iter().map(|o| eq(&cols, o)))?]),
        Condition::Nin(os) => Some(not(vec![any_of(os.iter().map(|o| eq(&cols, o)))?])),
        Condition::Exists(true) => Some(vec![Sql::lit(format!("{e} IS NOT NULL"))]),
        Condition::Exists(false) => Some(vec![Sql::lit(format!("{e} IS NULL"))]),
        Condition::Not(cs) => {
            let mut conj = Vec::new();
            for c in cs {
                conj.extend(condition(path, c, layout)?);
            }
            Some(not(conj))
        }
    }
}

/// `ORDER BY` for sort keys (then `id`), when every key has one value that is not an object or
/// array in every document, with the paths it assumed so; `None` sends the sort to Rust.
///
/// `filter` is the exactly translated filter: a sort key whose type class it pins is ordered by
/// that class's column alone, without a `NULLS` clause, so that an index whose leading columns
/// the filter's equalities pin (the class column among them) serves the sort in either
/// direction.
pub(crate) fn order_by(
    sort: &[SortField],
    shapes: &Shapes,
    layout: &Layout,
    filter: &Filter,
) -> Option<(String, Vec<String>)> {
    let mut parts = Vec::new();
    let mut assumed = Vec::new();
    for s in sort {
        let desc = s.direction == Direction::Descending;
        let dir = if desc { "DESC" } else { "ASC" };
        if s.path.as_str() == "_id" {
            parts.push(format!("id {dir}"));
            continue;
        }
        if !shapes.single_valued(&s.path) || shapes.objects.contains(s.path.as_str()) {
            return None;
        }
        let [c, n, st] = values(&s.path, layout)?;
        if let Some(class) = orbstore_core::sqltree::pinned_class(filter, &s.path) {
            let value = if class == orbstore_core::sqltree::PinnedClass::String { st } else { n };
            parts.push(format!("{value} {dir}"));
            assumed.push(s.path.as_str().to_owned());
            continue;
        }
        let nulls = if desc { "NULLS LAST" } else { "NULLS FIRST" };
        parts.push(format!("{c} {dir} {nulls}, {n} {dir}, {st} {dir}"));
        assumed.push(s.path.as_str().to_owned());
    }
    parts.push("id ASC".to_owned());
    Some((parts.join(", "), assumed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(f: Value, shapes: &Shapes) -> Where {
        translate(&Filter::from_json(&f).unwrap(), shapes, &Layout::empty())
    }

    #[test]
    fn paths_with_index_columns_are_read_from_them() {
        let layout = Layout {
            version: 1,
            paths: vec![(FieldPath::new("score"), "_xab".to_owned())],
            loaded: std::time::Instant::now(),
        };
        let f = Filter::from_json(&json!({"score": {"$gte": 0.5}, "user": "u"})).unwrap();
        let (text, _) = translate(&f, &Shapes::default(), &layout).sql.render();
        assert!(text.contains("\"_xabn\" >= $1::text::numeric"), "{text}");
        assert!(text.contains("\"_xabc\" = 1"), "{text}");
        assert!(text.contains("doc->>'user'"), "a path without columns keeps its expressions: {text}");
    }

    #[test]
    fn scalar_conditions_translate_exactly_with_bound_values() {
        let w = t(json!({"score": {"$gte": 0.5, "$lt": 1}, "user": "u'1"}), &Shapes::default());
        assert!(w.exact);
        let (text, params) = w.sql.render();
        assert!(text.contains(">= $1::text::numeric"), "{text}");
        assert!(!text.contains("u'1"), "values are never spliced: {text}");
        assert_eq!(
            params,
            vec![Param::Text("0.5".into()), Param::Text("1".into()), Param::Text("u'1".into())]
        );
        // One type guard for the two conditions on `score`.
        assert_eq!(text.matches("THEN 5 END) = 1").count(), 1, "{text}");
        assert_eq!(w.assumed_single, HashSet::from(["score".to_owned(), "user".to_owned()]));
    }

    #[test]
    fn arrays_on_the_path_fall_back_to_the_evaluator() {
        let mut shapes = Shapes::default();
        shapes.learn(json!({"tags": ["x"], "p": {"q": [1]}}).as_object().unwrap());
        assert!(!t(json!({"tags": "x"}), &shapes).exact);
        assert!(!t(json!({"p.q.r": 1}), &shapes).exact);
        assert!(t(json!({"p.z": 1}), &shapes).exact);
        let w = t(json!({"$or": [{"tags": "x"}, {"a": 1}]}), &shapes);
        assert!(!w.exact && w.sql.render().0 == "TRUE");
    }

    #[test]
    fn hostile_paths_are_quoted_or_refused() {
        let (e, text) = expr(&FieldPath::new("it's.x")).unwrap();
        assert_eq!(e, "doc->'it''s'->'x'");
        assert_eq!(text, "doc->'it''s'->>'x'");
        assert!(expr(&FieldPath::new("a\0b")).is_none());
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let w =
            t(json!({"$or": [{"a": "x"}, {"b": {"$in": [1, 2]}}], "_id": {"$gt": "k"}}), &Shapes::default());
        let (text, params) = w.sql.render();
        for n in 1..=4 {
            assert!(text.contains(&format!("${n}::")), "{text}");
        }
        assert_eq!(params.len(), 4);
    }
}
