//! Decides at build time whether the tests that need PostgreSQL or MongoDB can run, for the
//! build scripts of every crate that has such tests (one place for the rule).
//!
//! Without `ORBSTORE_TEST_POSTGRES_URL` those tests are compiled `#[ignore]`d (cfg
//! `orbstore_no_postgres`), without `ORBSTORE_TEST_MONGODB_URL` likewise (cfg
//! `orbstore_no_mongodb`), so that a run without a server reports them as ignored, not as
//! passed: libtest cannot ignore a test at run time. `ORBSTORE_REQUIRE_SERVERS=1` (CI) ignores
//! nothing: a missing server then fails those tests. Changing any of these variables rebuilds
//! the crate. A test marks itself with
//! `#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]`.
//!
//! No dependencies: build scripts compile it before anything else.

#![deny(missing_docs)]

/// `(the URL variable, the cfg set when it is missing)`.
pub const SERVERS: &[(&str, &str)] = &[
    ("ORBSTORE_TEST_POSTGRES_URL", "orbstore_no_postgres"),
    ("ORBSTORE_TEST_MONGODB_URL", "orbstore_no_mongodb"),
];

/// Whether `ORBSTORE_REQUIRE_SERVERS` asks for every server test to run (`1` or `true`).
pub fn servers_required() -> bool {
    std::env::var("ORBSTORE_REQUIRE_SERVERS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Prints the build-script instructions: the cfgs declared, set for each missing server, and
/// the variables that trigger a rebuild. Call it from `build.rs`'s `main`.
pub fn emit() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=ORBSTORE_REQUIRE_SERVERS");
    let required = servers_required();
    for (var, cfg) in SERVERS {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if !required && std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
