//! Decides at build time whether the tests that need a MongoDB server can run: without
//! `ORBSTORE_TEST_MONGODB_URL` they are compiled `#[ignore]`d (cfg `orbstore_no_mongodb`), so
//! that a run without the server reports them as ignored, not as passed.
//! `ORBSTORE_REQUIRE_SERVERS=1` (CI) ignores nothing: a missing server then fails those tests.
//! Changing either variable rebuilds the crate; see orbstore-testkit's README.

/// `(the URL variable, the cfg set when it is missing)`.
const SERVERS: &[(&str, &str)] = &[("ORBSTORE_TEST_MONGODB_URL", "orbstore_no_mongodb")];

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
