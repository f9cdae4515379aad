//! Load: ten jobs on ten topics at once against one server, as an Airflow worker pool runs
//! them. Each must end exactly once; each runner's peak RSS is printed (the memory figures
//! themselves are the benchmark's and RELIABILITY.md's business, not a test's).
//! `#[ignore]`d in the parallel phase: it loads the whole machine; scripts/test.sh runs it in
//! the serial phase.

use futures::future::join_all;

use crate::common::*;

#[tokio::test]
#[ignore = "loads the whole machine; scripts/test.sh runs it in the serial phase"]
async fn ten_jobs_on_ten_topics_at_once_each_exactly_once() {
    const JOBS: usize = 10;
    const N: i64 = 100_000;
    let mut setups = Vec::new();
    for j in 0..JOBS {
        let db = TestDb::new(&format!("load{j}")).await;
        let topic = topic(&format!("load{j}"));
        produce(&topic, seed_records(0..N), 1000).await;
        setups.push((db, topic));
    }
    let runs = join_all(setups.iter().map(|(db, topic)| {
        let child = command(&run_args(topic, db)).spawn().unwrap();
        tokio::task::spawn_blocking(move || wait_with_peak_rss(child))
    }))
    .await;
    let mut peaks = Vec::new();
    for ((db, _), run) in setups.iter().zip(runs) {
        let (run, peak_kib) = run.unwrap();
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.u("rows_written"), N as u64);
        assert_exact(db, N).await;
        peaks.push(peak_kib);
    }
    peaks.sort_unstable();
    eprintln!(
        "load: {JOBS} jobs x {N} records, each exactly once; peak RSS per runner (KiB): min {} \
         median {} max {}",
        peaks[0],
        peaks[JOBS / 2],
        peaks[JOBS - 1]
    );
}
