//! The whole conformance suite, property tests included, against the server in
//! `ORBSTORE_TEST_MONGODB_URL` in the mode it calls for (exact on nx-27017), each test in a
//! database of its own; ignored when `ORBSTORE_TEST_MONGODB_URL` was not set at build time (see
//! `build.rs`).

mod common;

orbstore_testkit::conformance_suite!(
    orbstore_testkit::FnFactory(common::fixture),
    #[cfg_attr(orbstore_no_mongodb, ignore = "needs ORBSTORE_TEST_MONGODB_URL (a MongoDB server)")]
);
