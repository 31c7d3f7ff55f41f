//! The whole conformance suite, property tests included, against a real PostgreSQL server, each
//! test in a schema of its own; ignored when `ORBSTORE_TEST_POSTGRES_URL` was not set at build
//! time (see `build.rs`).

mod common;

orbstore_testkit::conformance_suite!(
    orbstore_testkit::FnFactory(common::fixture),
    #[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
);
