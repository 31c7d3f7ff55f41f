//! The PostgreSQL views answer analysts' plain SQL: recent high-reward events with their
//! metadata, active policies by mean reward, a configuration key's history. Ignored when
//! `ORBSTORE_TEST_POSTGRES_URL` was not set at build time (see `build.rs`).

use orbstore::{BackendConfig, PersistenceBackend};
use orbstore_postgres::PostgresBackend;
use orbstore_rl::*;
use serde_json::json;

fn event(id: u128, t: u64, goal: f64) -> Event {
    Event {
        id,
        timestamp_us: t,
        episode: 1,
        step: t as u32,
        event_type: "step".into(),
        flags: 1,
        state: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        action: [0.0; 8],
        rewards: Rewards { homeostasis: 0.0, curiosity: 0.0, efficiency: 0.0, goal },
        policy_version: "p1".into(),
        sequence: t,
    }
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn analysts_sql_runs_on_the_views() {
    let url = orbstore_testkit::containers::postgres_url()
        .expect("this test needs a PostgreSQL server: ORBSTORE_TEST_POSTGRES_URL or a Docker engine");
    let BackendConfig::Postgres(mut cfg) = BackendConfig::from_url(&url).unwrap() else { panic!("{url}") };
    cfg.schema = format!("orbtest_{}", orbstore::generate_id().replace('-', ""));
    let pg = PostgresBackend::open(cfg.clone()).await.unwrap();

    let events = EventStore::open(&pg).await.unwrap();
    let meta = ActionMetadata {
        intent_type: "grasp".into(),
        executor_id: "arm-2".into(),
        parameters: json!({"force": 3}),
    };
    events.write_event_with_metadata(&event(1, 1_000, 9.0), &meta).await.unwrap();
    events.write_event(&event(2, 2_000, 7.0)).await.unwrap();
    events.write_event(&event(3, 3_000, 1.0)).await.unwrap();
    let policies = PolicyStore::open(&pg).await.unwrap();
    let a = policies.save_policy("bin-a", "r1", Default::default(), json!({})).await.unwrap();
    policies.save_policy("bin-b", "r2", Default::default(), json!({})).await.unwrap();
    let b2 = policies.save_policy("bin-b", "r3", Default::default(), json!({})).await.unwrap();
    policies.record_execution(&a.id, 1.0).await.unwrap();
    policies.record_execution(&b2.id, 4.0).await.unwrap();
    let config = ConfigStore::open(&pg).await.unwrap();
    for v in [0.1, 0.2, 0.3] {
        config.save_config("router", "alpha", json!(v)).await.unwrap();
    }
    LearningMetrics::open(&pg).await.unwrap().record("loss", json!(0.5), None).await.unwrap();

    let views = create_postgres_views(&pg).await.unwrap();
    assert_eq!(views, format!("{}_views", cfg.schema));
    let c = pg.raw_client().await.unwrap();

    let rows = c
        .query(
            &format!(
                "SELECT e.id, e.total_reward, m.intent_type, e.state[3], e.occurred_at IS NOT NULL
                 FROM \"{views}\".experience_events e
                 LEFT JOIN \"{views}\".action_metadata m ON m.event_id = e.id
                 WHERE NOT e.archived AND e.total_reward >= 5
                 ORDER BY e.timestamp_us DESC LIMIT 10"
            ),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, f64, Option<String>, f64, bool)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    assert_eq!(
        got,
        vec![
            (format!("{:032x}", 2), 7.0, None, 3.0, true),
            (format!("{:032x}", 1), 9.0, Some("grasp".to_owned()), 3.0, true),
        ]
    );

    let rows = c
        .query(
            &format!("SELECT state_bin, version, mean_reward FROM \"{views}\".adna_policies WHERE active ORDER BY mean_reward DESC"),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64, f64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got, vec![("bin-b".to_owned(), 2, 4.0), ("bin-a".to_owned(), 1, 1.0)]);

    let rows = c
        .query(
            &format!(
                "SELECT version, value::text, parent_id FROM \"{views}\".configuration_store
                 WHERE component = 'router' AND key = 'alpha' ORDER BY version DESC"
            ),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        got,
        vec![
            (3, "0.3".to_owned(), Some("router/alpha:v2".to_owned())),
            (2, "0.2".to_owned(), Some("router/alpha:v1".to_owned())),
            (1, "0.1".to_owned(), None)
        ]
    );
    let n: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM \"{views}\".learning_metrics WHERE metric_type = 'loss'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    c.batch_execute(&format!("DROP SCHEMA \"{views}\" CASCADE; DROP SCHEMA \"{}\" CASCADE", cfg.schema))
        .await
        .unwrap();
    drop(c);
    pg.close().await.unwrap();
}
