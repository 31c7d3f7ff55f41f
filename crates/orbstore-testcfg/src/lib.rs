//! Decides at build time whether the tests that need PostgreSQL or MongoDB can run, for the
//! build scripts of every crate that has such tests (one place for the rule).
//!
//! Without `ORBSTORE_TEST_POSTGRES_URL` and without a Docker engine to start a PostgreSQL
//! container in (see `orbstore_testkit::containers`), those tests are compiled `#[ignore]`d (cfg
//! `orbstore_no_postgres`); without `ORBSTORE_TEST_MONGODB_URL` likewise (cfg
//! `orbstore_no_mongodb`); without a Docker engine, the container fault tests (cfg
//! `orbstore_no_docker`). A run without a server so reports them as ignored, not as passed:
//! libtest cannot ignore a test at run time. `ORBSTORE_REQUIRE_SERVERS=1` (CI) ignores nothing:
//! a missing server then fails those tests. Changing any of these variables, `DOCKER_HOST`, or
//! the Docker socket (an engine starting or stopping) reruns the build script. A test marks
//! itself with
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

/// The cfg set when no Docker engine answers.
pub const NO_DOCKER: &str = "orbstore_no_docker";

/// The Docker engine's socket: `DOCKER_HOST` when it is a `unix://` address, else the default.
pub fn docker_socket() -> std::path::PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => h.trim_start_matches("unix://").into(),
        _ => "/var/run/docker.sock".into(),
    }
}

/// Whether a Docker engine answers `GET /_ping` on [`docker_socket`] within two seconds.
/// Hand-written over a Unix socket because build scripts get no dependencies (see the crate
/// docs); a TCP `DOCKER_HOST` counts as not answering here.
pub fn docker_answers() -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(docker_socket()) else { return false };
    let timeout = Some(std::time::Duration::from_secs(2));
    if s.set_read_timeout(timeout).is_err() || s.set_write_timeout(timeout).is_err() {
        return false;
    }
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Prints the build-script instructions: the cfgs declared, set for each missing server, and
/// what triggers a rerun. Call it from `build.rs`'s `main`.
pub fn emit() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=ORBSTORE_REQUIRE_SERVERS");
    println!("cargo::rerun-if-env-changed=DOCKER_HOST");
    // The socket appears and goes with the engine (a missing file reruns the script every build).
    println!("cargo::rerun-if-changed={}", docker_socket().display());
    let required = servers_required();
    let docker = required || docker_answers();
    for (var, cfg) in SERVERS {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let unset = std::env::var_os(var).is_none_or(|v| v.is_empty());
        // A PostgreSQL server can also be a container.
        let container = *cfg == "orbstore_no_postgres" && docker;
        if !required && unset && !container {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rustc-check-cfg=cfg({NO_DOCKER})");
    if !docker {
        println!("cargo::rustc-cfg={NO_DOCKER}");
    }
}
