//! The whole conformance suite, property tests included, against a real PostgreSQL server, each
//! test in a schema of its own.

mod common;

orbstore_testkit::conformance_suite!(orbstore_testkit::FnFactory(common::fixture));
