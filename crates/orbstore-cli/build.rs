//! Decides at build time whether the tests that need PostgreSQL or MongoDB can run: without
//! `ORBSTORE_TEST_POSTGRES_URL` they are compiled `#[ignore]`d (cfg `orbstore_no_postgres`),
//! without `ORBSTORE_TEST_MONGODB_URL` likewise (cfg `orbstore_no_mongodb`), so that a run
//! without a server reports them as ignored, not as passed. `ORBSTORE_REQUIRE_SERVERS=1` (CI)
//! ignores nothing: a missing server then fails those tests. Changing any of these variables
//! rebuilds the crate; see orbstore-testkit's README.

/// `(the URL variable, the cfg set when it is missing)`.
const SERVERS: &[(&str, &str)] = &[
    ("ORBSTORE_TEST_POSTGRES_URL", "orbstore_no_postgres"),
    ("ORBSTORE_TEST_MONGODB_URL", "orbstore_no_mongodb"),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=ORBSTORE_REQUIRE_SERVERS");
    let required =
        std::env::var("ORBSTORE_REQUIRE_SERVERS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    for (var, cfg) in SERVERS {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if !required && std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
