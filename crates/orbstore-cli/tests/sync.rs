//! `orb sync` and offline mode from the environment, end to end through the binary: an agent
//! that starts while its PostgreSQL server is unreachable keeps learning into the journal, and
//! `orb sync --wait` later ships all of it to the real server, where a run without offline mode
//! resumes from it.

use std::net::TcpListener;

use orbstore::{BackendConfig, Config, PersistenceBackend};
use serde_json::Value;

mod common;

use common::{object, orb, Run};

#[test]
fn sync_without_offline_mode_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vars = [("ORB_DATA_DIR", data.to_str().unwrap())];
    let run = orb(dir.path(), &vars, &["sync", "--json"]);
    assert!(!run.ok);
    let v = object(&run.out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "InvalidInput");
    assert!(v["error"]["message"].as_str().unwrap().contains("PERSISTENCE_OFFLINE_MODE=true"), "{v}");
    let run = orb(dir.path(), &vars, &["sync"]);
    assert!(!run.ok && run.out.is_empty() && run.err.contains("no journal"), "{}", run.err);
    let run = orb(dir.path(), &[("PERSISTENCE_OFFLINE_MODE", "sometimes")], &["sync", "--json"]);
    let v = object(&run.out);
    assert!(!run.ok && v["error"]["message"].as_str().unwrap().contains("PERSISTENCE_OFFLINE_MODE"), "{v}");
}

#[test]
fn offline_mode_on_the_embedded_default_is_synced_after_a_wait() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("PERSISTENCE_OFFLINE_MODE", "true")];
    let run = orb(dir.path(), &vars, &["demo", "--episodes", "5"]);
    assert!(run.ok, "{}\n{}", run.out, run.err);
    let run = orb(dir.path(), &vars, &["sync", "--wait", "30", "--json"]);
    let v = object(&run.out);
    assert!(run.ok, "{v}");
    assert_eq!((v["synced"].clone(), v["pending_writes"].clone()), (Value::Bool(true), 0.into()), "{v}");
    assert_eq!(v["circuit"], "closed", "{v}");
    assert!(dir.path().join("data/journal/log").is_dir() && dir.path().join("data/journal/replica").is_dir());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn counts(stats: &Value) -> Vec<(String, u64)> {
    let mut c: Vec<(String, u64)> = stats["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["documents"].as_u64().unwrap()))
        .collect();
    c.sort();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn an_agent_started_while_postgres_is_down_learns_and_syncs_later() {
    let url = orbstore_testkit::containers::postgres_url()
        .expect("this test needs a PostgreSQL server: ORBSTORE_TEST_POSTGRES_URL or a Docker engine");
    let schema = format!("orbtest_{}", orbstore::generate_id().replace('-', ""));
    let sep = if url.contains('?') { '&' } else { '?' };
    let up = format!("{url}{sep}schema={schema}");
    // The same database on a port nobody listens on: the server is "down".
    let down = format!("postgres://postgres@127.0.0.1:{}/test?schema={schema}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let journal = journal.display().to_string();
    let offline = |db: &str| {
        vec![
            ("PERSISTENCE_OFFLINE_MODE", "true".to_owned()),
            ("ORB_JOURNAL_DIR", journal.clone()),
            ("DATABASE_URL", db.to_owned()),
        ]
    };

    // Down, on a fresh journal: refused by default (its empty replica would overwrite the
    // server's data later), accepted when asked for.
    let down_vars = offline(&down);
    let run = orb(dir.path(), &down_vars, &["demo", "--episodes", "1"]);
    assert!(!run.ok && run.err.contains("ORB_OFFLINE_COLD_START"), "{}", run.err);
    let mut down_vars = down_vars;
    down_vars.push(("ORB_OFFLINE_COLD_START", "true".to_owned()));
    // Down: the agent starts, learns, and its writes wait in the journal.
    let run = orb(dir.path(), &down_vars, &["demo", "--episodes", "20"]);
    assert!(run.ok, "the demo must run while the server is down:\n{}\n{}", run.out, run.err);
    assert!(run.out.contains("Starting fresh"), "{}", run.out);
    let run = orb(dir.path(), &down_vars, &["sync", "--json"]);
    let status = object(&run.out);
    assert!(!run.ok, "not synced while the server is down: {status}");
    assert!(status["pending_writes"].as_u64().unwrap() > 0, "{status}");
    assert!(status["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{status}");
    let local = object(&orb(dir.path(), &down_vars, &["stats", "--json"]).out_json_line().out);

    // Up: one `orb sync --wait` ships everything.
    let up_vars = offline(&up);
    let run = orb(dir.path(), &up_vars, &["sync", "--wait", "60", "--json"]);
    let status = object(&run.out);
    assert!(run.ok, "{status}\n{}", run.err);
    assert_eq!(status["pending_writes"], 0, "{status}");
    assert!(status["dead_letters"].as_array().unwrap().is_empty(), "{status}");

    // The server holds what the journal's replica holds, and an agent without offline mode
    // resumes from it.
    let plain = [("DATABASE_URL", up.as_str())];
    let server = object(&orb(dir.path(), &plain, &["stats", "--json"]).out_json_line().out);
    assert_eq!(counts(&server), counts(&local), "server {server}\nlocal {local}");
    assert!(counts(&server).iter().any(|(_, n)| *n > 0), "{server}");
    let run = orb(dir.path(), &plain, &["demo", "--episodes", "2"]);
    assert!(run.ok && run.out.contains("from 20 earlier episodes"), "{}\n{}", run.out, run.err);

    let config = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| up.clone())).unwrap();
    let BackendConfig::Postgres(pg) = config.backend else { unreachable!() };
    let b = orbstore::backends::PostgresBackend::open(pg).await.unwrap();
    b.raw_client().await.unwrap().batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
    b.close().await.unwrap();
}

trait JsonLine {
    /// `orb stats --json` prints one pretty-printed object: as one line for [`object`].
    fn out_json_line(self) -> Run;
}

impl JsonLine for Run {
    fn out_json_line(self) -> Run {
        assert!(self.ok, "{}\n{}", self.out, self.err);
        let v: Value = serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("{e}: {}", self.out));
        Run { out: v.to_string(), err: self.err, ok: self.ok }
    }
}
