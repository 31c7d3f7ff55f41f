//! The container fault tests are compiled `#[ignore]`d without a Docker engine (see the
//! `orbstore-testcfg` crate).

fn main() {
    orbstore_testcfg::emit();
}
