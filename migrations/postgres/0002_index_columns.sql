-- Typed index columns (docs/architecture.md, "The PostgreSQL backend"): each indexed path's
-- (class, number, string) values are stored in three plain columns of the collection's table,
-- written by orbstore with the row, so an insert parses no JSON for its indexes.
--
-- A collection's index-column layout: the paths that have columns, and the columns' common
-- name prefix ("_x<uuid>": never reused, so a process that cached the columns of a dropped
-- collection fails on a missing column instead of reading another path's).
CREATE TABLE _index_columns (
    collection text COLLATE "C" NOT NULL,
    path text COLLATE "C" NOT NULL,
    base text NOT NULL UNIQUE,
    PRIMARY KEY (collection, path)
);

-- The layout's version (bumped by every change of its paths) and the trigger function that
-- fills the columns of a row written by a process whose cached layout is older.
ALTER TABLE _collections ADD COLUMN index_version int NOT NULL DEFAULT 0;
ALTER TABLE _collections ADD COLUMN index_function text;
