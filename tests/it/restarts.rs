//! Faults under a running job: MariaDB and the Pulsar broker restarted in the middle of a run.
//! Each restarts a service every other test uses, so they are `#[ignore]`d in the parallel
//! phase and run alone by scripts/test.sh (`--ignored --test-threads 1`).

use std::process::Command;
use std::time::Duration;

use crate::common::*;

pub(crate) fn services(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh");
    must_succeed(
        Command::new(script).args(args),
        &format!("services.sh {args:?}"),
    );
}

/// Starts a slow run (small batches), restarts `service` once `restart_at` rows are in, and
/// checks that the run still ends with every record exactly once.
async fn survives_restart_of(service: &str, prefix: &str, extra: &[&str]) {
    const N: i64 = 600_000;
    let db = TestDb::new(prefix).await;
    let topic = topic(prefix);
    produce(&topic, seed_records(0..N), 1000).await;
    let mut args = run_args(&topic, &db);
    // Small transactions keep the run going for several seconds, long enough to restart under it.
    args.extend(["--batch-rows".into(), "100".into()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut child = command(&args).spawn().unwrap();
    let pid = child.id();
    wait_mid_run(&db, &mut child, 5_000).await;
    let waiter = tokio::task::spawn_blocking(move || child.wait_with_output());
    let outage_started = chrono::Utc::now();
    services(&["stop", service]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    services(&["up"]);

    let out = match tokio::time::timeout(Duration::from_secs(300), waiter).await {
        Ok(out) => out.unwrap().unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("the run did not finish after {service} restarted");
        }
    };
    let run = parse(out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The outage fell inside the run. (Whether it cost a counted retry depends on timing:
    // a connection pool may simply wait for the server to come back.)
    let ended: chrono::DateTime<chrono::Utc> =
        run.summary["ended_at"].as_str().unwrap().parse().unwrap();
    assert!(
        ended > outage_started + chrono::Duration::seconds(2),
        "the run ended at {ended}, before {service} was back (stopped at {outage_started})"
    );
    assert_exact(&db, N).await;
}

#[tokio::test]
#[ignore = "restarts MariaDB; scripts/test.sh runs it alone"]
async fn mariadb_restart_in_the_middle_of_a_run() {
    // The default strategy: LOAD DATA through mysql_async.
    survives_restart_of("mariadb", "mdbrestart", &[]).await;
}

#[tokio::test]
#[ignore = "restarts MariaDB; scripts/test.sh runs it alone"]
async fn mariadb_restart_in_the_middle_of_an_insert_run() {
    survives_restart_of("mariadb", "mdbrestart_ins", &["--write-strategy", "insert"]).await;
}

#[tokio::test]
#[ignore = "restarts the Pulsar broker; scripts/test.sh runs it alone"]
async fn broker_restart_in_the_middle_of_a_run() {
    survives_restart_of("pulsar", "brokerrestart", &[]).await;
}

/// The broker freezes (SIGSTOP) while a large LOAD DATA batch is open on the server, for longer
/// than the server's net_read_timeout: the reader closes the batch it cannot feed, so the
/// statement neither times out (errors 1158-1161 end a run) nor holds the table's AUTO-INC lock
/// for the whole stall; the run ends exactly once.
#[tokio::test]
#[ignore = "freezes the Pulsar broker and changes a server-wide setting; scripts/test.sh runs it alone"]
async fn a_frozen_broker_does_not_starve_an_open_load_data_batch() {
    const N: i64 = 100_000;
    let db = TestDb::new("frozen").await;
    let topic = topic("frozen");
    // Unbatched: one entry per record, so reading takes long enough to freeze the broker in
    // the middle of it.
    produce(&topic, seed_records(0..N), 1).await;
    let _restore = RestoreGlobal("SET GLOBAL net_read_timeout = 30");
    db.exec("SET GLOBAL net_read_timeout = 8").await;
    let args = with(
        run_args(&topic, &db),
        &["--write-strategy", "load-data", "--batch-rows", "1000000"],
    );
    let mut child = command(&args).spawn().unwrap();
    // Wait for the batch's LOAD DATA statement to be open on the server.
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let mut conn = db.conn().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE DB = ? AND INFO LIKE 'LOAD DATA%'",
        )
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if open > 0 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no LOAD DATA opened"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cache = std::env::var("P2M_CACHE_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.cache").into());
    let broker: i32 = std::fs::read_to_string(format!("{cache}/run/pulsar.pid"))
        .expect("the broker's pid file (scripts/services.sh)")
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(broker, libc::SIGSTOP) };
    tokio::time::sleep(Duration::from_secs(12)).await;
    unsafe { libc::kill(broker, libc::SIGCONT) };
    let what = "the run did not finish after the broker thawed";
    let run = ended_within(child, Duration::from_secs(240), what).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.u("batches") >= 2,
        "the open batch was not closed: {}",
        run.stdout
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sink_table").await, N);
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT id) FROM sink_table").await,
        N
    );
}

/// The server turns read-only in the middle of a run (a failover, an operator): the run stops
/// with exit 4 and the server's reason; once writable again, a re-run completes exactly once.
#[tokio::test]
#[ignore = "sets read_only server-wide; scripts/test.sh runs it alone"]
async fn a_server_turned_read_only_stops_the_run_clearly() {
    const N: i64 = 300_000;
    let db = TestDb::new("readonly").await;
    let topic = topic("readonly");
    produce(&topic, seed_records(0..N), 1000).await;
    // A user without SUPER (root ignores read_only).
    let user = unique("p2m_ro");
    db.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT ALL ON `{}`.* TO '{user}'@'%'",
        db.url.rsplit('/').next().unwrap()
    ))
    .await;
    let url = db
        .url
        .replacen("mysql://root@", &format!("mysql://{user}:pw@"), 1);
    let mut args = with(run_args(&topic, &db), &["--batch-rows", "100"]);
    let i = args.iter().position(|a| a == "--mysql-url").unwrap() + 1;
    args[i] = url;
    let _restore = RestoreGlobal("SET GLOBAL read_only = OFF");
    let mut child = command(&args).spawn().unwrap();
    wait_mid_run(&db, &mut child, 2_000).await;
    db.exec("SET GLOBAL read_only = ON").await;
    let what = "the run did not end on a read-only server";
    let run = ended_within(child, Duration::from_secs(180), what).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.summary["error"].as_str().unwrap().contains("read-only")
            || run.summary["error"].as_str().unwrap().contains("read_only")
            || run.summary["error"].as_str().unwrap().contains("1290"),
        "{}",
        run.stdout
    );
    db.exec("SET GLOBAL read_only = OFF").await;
    let rerun = run_binary(&args).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_exact(&db, N).await;
}
