//! Running with least privilege: a MySQL user granted exactly what README's "Least
//! privilege" section lists (after `migrate` ran as a user allowed to create the project's
//! tables) runs LOAD DATA and INSERT jobs end to end, re-runs them, fails on a bad record,
//! and `check` names what a user without those grants lacks.

use crate::common::*;

/// The grants README gives for `run` (`{db}` is the database), as one statement each.
fn run_grants(db: &str) -> Vec<String> {
    vec![
        format!("GRANT SELECT, INSERT ON `{db}`.`sink_table` TO {{user}}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.`p2m_checkpoint` TO {{user}}"),
        format!("GRANT SELECT, INSERT, UPDATE ON `{db}`.`p2m_dead_letter` TO {{user}}"),
        format!("GRANT SELECT, INSERT, UPDATE ON `{db}`.`p2m_window_end` TO {{user}}"),
    ]
}

/// A fresh user with `grants` (`{user}` stands for it); its URL for `db`.
async fn user_with(db: &TestDb, grants: &[String]) -> String {
    let user = unique("p2m_lp");
    let account = format!("'{user}'@'%'");
    let mut sql = vec![format!("CREATE USER {account} IDENTIFIED BY 'lp-secret'")];
    sql.extend(grants.iter().map(|g| g.replace("{user}", &account)));
    db.exec(&sql.join("; ")).await;
    let server = mysql_server_url();
    let host = server.rsplit_once('@').map_or("127.0.0.1:3306", |(_, h)| h);
    format!("mysql://{user}:lp-secret@{host}/{}", db.name)
}

/// `run_args` with the database reached as another user.
fn as_user(topic: &str, db: &TestDb, url: &str) -> Vec<String> {
    let mut args = run_args(topic, db);
    let at = args.iter().position(|a| a == "--mysql-url").unwrap();
    args[at + 1] = url.to_string();
    args
}

#[tokio::test]
async fn a_user_with_the_readme_grants_runs_both_write_paths() {
    for strategy in ["load-data", "insert"] {
        let db = TestDb::new("least").await;
        let migrate = run_binary(&["migrate".into(), "--mysql-url".into(), db.url.clone()]).await;
        assert_eq!(migrate.code, 0, "{}", migrate.stderr);
        let url = user_with(&db, &run_grants(&db.name)).await;
        let topic = topic("least");
        let mut records: Vec<Vec<u8>> = seed_records(0..1_000).collect();
        records.push(b"not-a-number|x".to_vec());
        produce(&topic, records, 100).await;
        let base = with(
            as_user(&topic, &db, &url),
            &["--write-strategy", strategy, "--to", "latest"],
        );
        let run = run_binary(&with(base.clone(), &["--on-bad-record", "dead-letter"])).await;
        assert_eq!(run.code, 0, "{strategy}: {}", run.stderr);
        assert_eq!(run.u("rows_written"), 1_000, "{strategy}");
        assert_eq!(run.u("dead_lettered"), 1, "{strategy}");
        let again = run_binary(&with(base.clone(), &["--on-bad-record", "dead-letter"])).await;
        assert_eq!(again.code, 0, "{strategy}: {}", again.stderr);
        assert_eq!(again.u("rows_written"), 0, "{strategy}");
        // A failure as that user: the bad record under the default policy, from scratch.
        let failed = run_binary(&with(base, &["--reprocess"])).await;
        assert_eq!(failed.code, 5, "{strategy}: {}", failed.stderr);
        assert!(!failed.stdout.contains("lp-secret") && !failed.stderr.contains("lp-secret"));
        assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, 1_000);
    }
}

/// `check` as a user who may read the table but not write the checkpoints names the missing
/// privilege and the table, instead of failing the first batch.
#[tokio::test]
async fn check_names_a_missing_privilege() {
    let db = TestDb::new("lackpriv").await;
    let migrate = run_binary(&["migrate".into(), "--mysql-url".into(), db.url.clone()]).await;
    assert_eq!(migrate.code, 0, "{}", migrate.stderr);
    let mut grants = run_grants(&db.name);
    grants.remove(1); // no privilege on p2m_checkpoint
    let url = user_with(&db, &grants).await;
    let topic = topic("lackpriv");
    produce(&topic, seed_records(0..10), 1).await;
    let mut args = as_user(&topic, &db, &url);
    args[0] = "check".into();
    let run = run_binary(&args).await;
    assert_ne!(run.code, 0, "{}", run.stdout);
    let err = run.summary["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("p2m_checkpoint") && err.contains("lacks"),
        "{err}"
    );
}
