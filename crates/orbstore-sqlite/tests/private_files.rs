//! The files of an SQLite database are private to their owner, whatever the umask.
//!
//! Guards against SQLite creating the database 0644 (and, since its unix VFS copies the
//! database's mode, the `-wal` and `-shm` files too) in a 0755 directory, readable by every local
//! user. Each test re-runs itself in a child process whose umask is 022, the usual default, so
//! that the result does not depend on the umask of whoever runs the suite (under 077 every file
//! would be private without the backend doing anything).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use orbstore_core::{CollectionExt, PersistenceBackend, SqliteConfig, SqliteLocation};
use orbstore_sqlite::SqliteBackend;
use serde_json::json;

const CHILD: &str = "ORBSTORE_TEST_UMASK_CHILD";

/// Whether this is the child: otherwise runs the test `name` again in a child with umask 022 and
/// asserts that it passed.
fn under_umask_022(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        // The umask really is 022: a file asked for 0666 comes out 0644.
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"").unwrap();
        assert_eq!(mode(&probe), "644", "the child's umask is not 022");
        return true;
    }
    let out = Command::new("/bin/sh")
        .args(["-c", r#"umask 022 && exec "$0" --exact "$1" --nocapture --test-threads=1"#])
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} under umask 022: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// The permission bits of `path`, in octal ("600").
fn mode(path: &Path) -> String {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:o}", meta.permissions().mode() & 0o777)
}

fn companion(db: &Path, suffix: &str) -> std::path::PathBuf {
    format!("{}{suffix}", db.display()).into()
}

async fn write_some(db: &Path) -> SqliteBackend {
    let store = SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(db.to_owned()))).await.unwrap();
    let c = store.collection("profiles").await.unwrap();
    let before = c.count_all().await.unwrap();
    for i in 0..20 {
        c.insert_value(json!({"epsilon": 0.1, "i": i})).await.unwrap();
    }
    assert_eq!(c.count_all().await.unwrap(), before + 20);
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_directories_are_0700_and_every_database_file_0600() {
    if !under_umask_022("created_directories_are_0700_and_every_database_file_0600") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("state").join("nested").join("agent.sqlite3");
    let store = write_some(&db).await;
    // While open, in WAL mode: the database, its WAL, its shared memory and orbstore's lock file.
    for suffix in ["", "-wal", "-shm", ".orbstore-lock"] {
        assert_eq!(mode(&companion(&db, suffix)), "600", "{suffix:?}");
    }
    assert_eq!(mode(&dir.path().join("state")), "700");
    assert_eq!(mode(&dir.path().join("state/nested")), "700");
    assert_eq!(mode(dir.path()), "755", "an existing directory keeps its mode");
    store.close().await.unwrap();
    // Reopened, the files SQLite creates again are still private.
    let store = write_some(&db).await;
    for suffix in ["", "-wal", "-shm", ".orbstore-lock"] {
        assert_eq!(mode(&companion(&db, suffix)), "600", "{suffix:?} after reopen");
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_directory_and_database_keep_their_modes() {
    if !under_umask_022("an_existing_directory_and_database_keep_their_modes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
    let db = shared.join("team.sqlite3");
    write_some(&db).await.close().await.unwrap();
    assert_eq!(mode(&shared), "750", "an existing directory keeps its mode");
    assert_eq!(mode(&db), "600");
    // An owner who shares the database with a group on purpose keeps it so; the WAL follows.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = write_some(&db).await;
    assert_eq!(mode(&db), "640");
    assert_eq!(mode(&companion(&db, "-wal")), "640");
    store.close().await.unwrap();
}
