-- orbstore's catalog. Collections live in tables named "c_<collection>" (id TEXT PRIMARY KEY, doc TEXT),
-- created on demand; this file holds what describes them.
CREATE TABLE orbstore_collections (
    name TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;

CREATE TABLE orbstore_indexes (
    collection TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL, -- the IndexSpec as JSON
    PRIMARY KEY (collection, name)
) WITHOUT ROWID;

-- The multikey flags: every path at which some stored document held an array ('array') or an
-- object ('object'). Queries on paths with no array on the way translate to plain SQL that
-- expression indexes serve; the others are evaluated exactly by orbstore's evaluator.
CREATE TABLE orbstore_shapes (
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('array', 'object')),
    PRIMARY KEY (collection, path, kind)
) WITHOUT ROWID;
