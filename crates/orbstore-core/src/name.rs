//! Collection-name validation, done before any I/O.

use crate::error::{Error, Result};

/// The longest collection name accepted (63 bytes: PostgreSQL's identifier limit).
pub const MAX_COLLECTION_NAME_LEN: usize = 63;

/// Checks that `name` is a valid collection name: `[a-z][a-z0-9_]{0,62}`.
///
/// The rule is the intersection of what every backend can hold without quoting tricks: a
/// PostgreSQL identifier, an SQLite table name, a MongoDB collection, a portable file name.
/// Anything else is [`crate::ErrorKind::InvalidInput`] naming the name and the rule.
pub fn validate_collection_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_COLLECTION_NAME_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid collection name {name:?}: a name must match [a-z][a-z0-9_]{{0,62}} \
             (a lowercase letter, then up to 62 lowercase letters, digits or underscores)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for n in ["a", "qtable", "user_profiles_2", &"a".repeat(63)] {
            validate_collection_name(n).unwrap();
        }
    }

    #[test]
    fn refuses_invalid_names_and_names_them() {
        for n in ["", "A", "1a", "_a", "a-b", "a b", "a.b", "é", "a;drop", "a\0", &"a".repeat(64)] {
            let e = validate_collection_name(n).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(&format!("{n:?}")), "{e}");
        }
    }
}
