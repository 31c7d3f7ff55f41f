//! Server-backed tests are compiled `#[ignore]`d when their server URL is not set (see the
//! `orbstore-testcfg` crate).

fn main() {
    orbstore_testcfg::emit();
}
