//! The shape of a filter's translation to SQL, shared by the SQL backends: which parts are exact,
//! which select a superset for the evaluator to filter again, and how conjuncts combine. Each
//! backend supplies the SQL of single conditions (its dialect); this module supplies the tree.

use std::collections::HashSet;

use crate::filter::{Condition, Filter};
use crate::path::FieldPath;

/// A piece of SQL with its parameters, as a backend builds it.
pub trait SqlPiece: Sized {
    /// The condition that is always true (`TRUE`, or `1` in SQLite).
    fn always() -> Self;

    /// The text of a piece without parameters, so repeated type guards can be dropped;
    /// `None` when it has parameters.
    fn guard_text(&self) -> Option<&str>;

    /// The pieces joined by `sep` (` AND `, ` OR `), each in parentheses, parameters in order.
    fn join(parts: Vec<Self>, sep: &str) -> Self;
}

/// A translation as a list of conjuncts (ANDed), so that identical type guards of several
/// conditions on one path appear once: a repeated guard would not be answered by an index and
/// would cost a JSON parse per row.
pub enum Translation<S> {
    /// Selects exactly the matching documents.
    Exact(Vec<S>),
    /// Selects a superset: the rows must be filtered again by the evaluator.
    Superset(Vec<S>),
}

/// Translates a filter. `leaf` gives the conjuncts of one field's conditions, or `None` when SQL
/// cannot express them (the evaluator decides). `None` overall: nothing useful in SQL.
///
/// `AND` drops untranslatable parts (a superset), `OR` with one gives up entirely.
pub fn translate<S: SqlPiece>(
    filter: &Filter,
    leaf: &mut impl FnMut(&FieldPath, &[Condition]) -> Option<Vec<S>>,
) -> Option<Translation<S>> {
    match filter {
        Filter::All => Some(Translation::Exact(Vec::new())),
        Filter::Field { path, conditions } => leaf(path, conditions).map(Translation::Exact),
        Filter::And(fs) => {
            let mut exact = true;
            let mut conj = Vec::new();
            for f in fs {
                match translate(f, leaf) {
                    Some(Translation::Exact(c)) => conj.extend(c),
                    Some(Translation::Superset(c)) => {
                        exact = false;
                        conj.extend(c);
                    }
                    None => exact = false,
                }
            }
            Some(if exact { Translation::Exact(conj) } else { Translation::Superset(conj) })
        }
        Filter::Or(fs) => {
            let mut exact = true;
            let mut alternatives = Vec::new();
            for f in fs {
                match translate(f, leaf)? {
                    Translation::Exact(c) => alternatives.push(and_all(c)),
                    Translation::Superset(c) => {
                        exact = false;
                        alternatives.push(and_all(c));
                    }
                }
            }
            let sql = S::join(alternatives, " OR ");
            Some(if exact { Translation::Exact(vec![sql]) } else { Translation::Superset(vec![sql]) })
        }
    }
}

/// ANDs conjuncts, dropping repeats of parameterless ones (type guards); always true when empty.
pub fn and_all<S: SqlPiece>(conjuncts: Vec<S>) -> S {
    let mut seen = HashSet::new();
    let kept: Vec<S> =
        conjuncts.into_iter().filter(|c| c.guard_text().is_none_or(|t| seen.insert(t.to_owned()))).collect();
    if kept.is_empty() {
        S::always()
    } else {
        S::join(kept, " AND ")
    }
}

/// Every condition of a field through `one`, or `None` when one of them is not expressible.
pub fn all_conditions<S>(
    conditions: &[Condition],
    mut one: impl FnMut(&Condition) -> Option<Vec<S>>,
) -> Option<Vec<S>> {
    let mut conj = Vec::new();
    for c in conditions {
        conj.extend(one(c)?);
    }
    Some(conj)
}

/// The type class an exactly translated filter pins `path` to at its top level, when it does:
/// a comparison with a boolean, a number or a string that every match must satisfy (the same
/// class only, by the query semantics). The SQL backends then sort on that class's value
/// alone, which lets an index whose leading columns the filter's equalities pin serve the sort.
pub fn pinned_class(filter: &Filter, path: &FieldPath) -> Option<PinnedClass> {
    match filter {
        Filter::And(parts) => parts.iter().find_map(|f| pinned_class(f, path)),
        Filter::Field { path: p, conditions } if p == path => conditions.iter().find_map(|c| match c {
            Condition::Eq(v)
            | Condition::Gt(v)
            | Condition::Gte(v)
            | Condition::Lt(v)
            | Condition::Lte(v) => match v {
                serde_json::Value::Bool(_) => Some(PinnedClass::Bool),
                serde_json::Value::Number(_) => Some(PinnedClass::Number),
                serde_json::Value::String(_) => Some(PinnedClass::String),
                _ => None,
            },
            _ => None,
        }),
        _ => None,
    }
}

/// A type class [`pinned_class`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinnedClass {
    /// `true` and `false`.
    Bool,
    /// Numbers.
    Number,
    /// Strings.
    String,
}
