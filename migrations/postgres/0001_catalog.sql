-- orbstore's catalog, in the configured schema (the migration runs with search_path set to it).
-- Collections live in tables named after the collection ("<name>" (id text, doc json)), created
-- on demand; names of orbstore's own tables and indexes start with "_", which no collection name
-- can, so they never collide.
CREATE TABLE _collections (
    name text COLLATE "C" PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Each index: its spec as orbstore sees it, and the PostgreSQL index that implements it.
CREATE TABLE _indexes (
    collection text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    spec json NOT NULL,
    pg_name text NOT NULL UNIQUE,
    PRIMARY KEY (collection, name)
);

-- The multikey flags: every path at which some stored document held an array ('array') or an
-- object ('object'). Written in the same transaction as the document, and checked by every
-- query in the same statement as its data, so a plan that assumed "no array here" is never
-- used on data that has one.
CREATE TABLE _shapes (
    collection text COLLATE "C" NOT NULL,
    path text COLLATE "C" NOT NULL,
    kind text NOT NULL CHECK (kind IN ('array', 'object')),
    PRIMARY KEY (collection, path, kind)
);
