//! Unit tests of the exposition: every family's HELP, TYPE, labels and values.

use super::*;
use crate::metrics::test_meta as meta;
use crate::report::RangeReport;

/// The labels of [`meta`] as written: quote and backslash escaped.
const L: &str = r#"job_id="a\"b\\c",topic="persistent://public/default/t",table="sink_table""#;

fn summary(exit_code: i32, outcome: &str) -> Summary {
    Summary {
        job_id: "j".into(),
        topic: "t".into(),
        table: "sink_table".into(),
        range: RangeReport {
            from: "earliest".into(),
            to: "latest".into(),
            partitions: vec![],
        },
        dry_run: false,
        write_strategy: None,
        mapped_columns: Vec::new(),
        timing: Default::default(),
        records_read: 0,
        bytes_read: 0,
        entries_read: 0,
        rows_converted: 0,
        rows_written: 0,
        duplicates_skipped: 0,
        bad_records: 0,
        bad_records_by_reason: BTreeMap::new(),
        dead_lettered: 0,
        batches: 0,
        retries: 0,
        started_at: "2023-11-14T22:13:20.000Z".into(),
        ended_at: "2023-11-14T22:13:32.500Z".into(),
        duration_ms: 12_500,
        rows_per_sec: 1234.5,
        outcome: outcome.into(),
        exit_code,
        error: None,
    }
}

/// Stats with a value in every family.
fn busy_stats() -> Stats {
    let stats = Stats::default();
    for (i, c) in [
        &stats.records_read,
        &stats.bytes_read,
        &stats.rows_converted,
        &stats.rows_written,
        &stats.duplicates,
        &stats.dead_lettered,
        &stats.batches,
        &stats.retries,
    ]
    .into_iter()
    .enumerate()
    {
        c.store(10 + i as u64, Relaxed);
    }
    stats.bad_record(BadReason::TooLong);
    stats.bad_record(BadReason::TooLong);
    stats.batch_seconds.observe(0.02);
    stats.batch_seconds.observe(3.0);
    stats.batch_seconds.observe(99.0);
    stats.partition_progress(0, |p| {
        p.records_read = 7;
        p.end_time = 10_000;
        p.last_publish_time = Some(7_500);
    });
    stats.partition_progress(1, |p| p.done = true);
    stats.partition_progress(2, |p| p.end_time = 1);
    stats
}

/// The sample lines of `text` for the family `name` (its own name, or a histogram's
/// `_bucket`, `_sum` and `_count`).
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            ["{", "_bucket{", "_sum{", "_count{"]
                .iter()
                .any(|s| l.starts_with(&format!("{name}{s}")))
        })
        .collect()
}

#[test]
fn renders_counters_histogram_and_escaped_labels() {
    let stats = Stats::default();
    stats.rows_written.store(42, Relaxed);
    stats.batch_seconds.observe(0.02);
    stats.bad_record(BadReason::TooLong);
    let text = render(&stats, &meta(), None, None);
    let l = r#"job_id="a\"b\\c",topic="persistent://public/default/t",table="sink_table""#;
    assert!(text.contains(&format!("pulsar2mysql_rows_written_total{{{l}}} 42\n")));
    assert!(text.contains(&format!(
        "pulsar2mysql_bad_records_total{{{l},reason=\"too_long\"}} 1\n"
    )));
    assert!(text.contains(&format!(
        "pulsar2mysql_bad_records_total{{{l},reason=\"malformed\"}} 0\n"
    )));
    assert!(text.contains(&format!(
        "pulsar2mysql_batch_duration_seconds_bucket{{{l},le=\"0.01\"}} 0\n"
    )));
    assert!(text.contains(&format!(
        "pulsar2mysql_batch_duration_seconds_bucket{{{l},le=\"0.025\"}} 1\n"
    )));
    assert!(text.contains(&format!(
        "pulsar2mysql_batch_duration_seconds_bucket{{{l},le=\"+Inf\"}} 1\n"
    )));
    assert!(text.contains(&format!("pulsar2mysql_running{{{l}}} 1\n")));
    assert!(!text.contains("last_success"));
    // Every sample line has a TYPE line for its family before it.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split('{').next().unwrap();
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {line}"
        );
    }
}

#[test]
fn every_family_has_its_help_type_and_labels() {
    let text = render(&busy_stats(), &meta(), Some(&summary(0, "success")), None);
    for (name, kind, help, extra) in FAMILIES {
        let kind = format!("{kind:?}").to_lowercase();
        assert!(
            text.contains(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")),
            "{name}"
        );
        let lines = samples(&text, name);
        assert!(!lines.is_empty(), "no sample of {name}");
        for line in lines {
            assert!(line.starts_with(name), "{line}");
            let labels = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
            assert!(labels.starts_with(L), "{line}");
            let rest = labels[L.len()..].trim_start_matches(',');
            let names: Vec<_> = rest
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|kv| kv.split('=').next().unwrap())
                .collect();
            let want: Vec<&str> = extra
                .into_iter()
                .chain((kind == "histogram" && line.contains("_bucket{")).then_some("le"))
                .collect();
            assert_eq!(names, want, "{line}");
        }
    }
}

#[test]
fn counters_and_bad_records_by_reason() {
    let text = render(&busy_stats(), &meta(), None, None);
    for (i, (name, _)) in COUNTERS.iter().enumerate() {
        assert_eq!(samples(&text, name), [format!("{name}{{{L}}} {}", 10 + i)]);
    }
    let bad = samples(&text, "pulsar2mysql_bad_records_total");
    assert_eq!(bad.len(), BAD_REASONS.len(), "every reason, at 0 when none");
    assert!(bad.contains(
        &format!("pulsar2mysql_bad_records_total{{{L},reason=\"too_long\"}} 2").as_str()
    ));
    assert!(bad
        .contains(&format!("pulsar2mysql_bad_records_total{{{L},reason=\"chunked\"}} 0").as_str()));
}

#[test]
fn run_state_while_running() {
    let text = render(&busy_stats(), &meta(), None, None);
    assert_eq!(
        samples(&text, "pulsar2mysql_build_info"),
        [format!(
            "pulsar2mysql_build_info{{{L},version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )]
    );
    assert_eq!(
        samples(&text, "pulsar2mysql_running"),
        [format!("pulsar2mysql_running{{{L}}} 1")]
    );
    assert_eq!(
        samples(&text, "pulsar2mysql_run_start_timestamp_seconds"),
        [format!(
            "pulsar2mysql_run_start_timestamp_seconds{{{L}}} 1700000000"
        )]
    );
    let duration = samples(&text, "pulsar2mysql_run_duration_seconds");
    let secs: f64 = duration[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!((0.0..60.0).contains(&secs), "{duration:?}");
    for name in [
        "pulsar2mysql_run_end_timestamp_seconds",
        "pulsar2mysql_exit_code",
        "pulsar2mysql_outcome",
        "pulsar2mysql_rows_per_second",
        LAST_SUCCESS,
    ] {
        assert!(!text.contains(name), "{name} before the end");
    }
}

#[test]
fn per_partition_gauges() {
    let text = render(&busy_stats(), &meta(), None, None);
    let p = |n: i32| format!("{L},partition=\"{n}\"");
    assert_eq!(
        samples(&text, "pulsar2mysql_partition_records_read"),
        [
            format!("pulsar2mysql_partition_records_read{{{}}} 7", p(0)),
            format!("pulsar2mysql_partition_records_read{{{}}} 0", p(1)),
            format!("pulsar2mysql_partition_records_read{{{}}} 0", p(2))
        ]
    );
    // Partition 2 has read nothing yet: no lag to tell.
    assert_eq!(
        samples(&text, "pulsar2mysql_partition_lag_seconds"),
        [
            format!("pulsar2mysql_partition_lag_seconds{{{}}} 2.5", p(0)),
            format!("pulsar2mysql_partition_lag_seconds{{{}}} 0", p(1))
        ]
    );
    assert_eq!(
        samples(&text, "pulsar2mysql_partition_done"),
        [
            format!("pulsar2mysql_partition_done{{{}}} 0", p(0)),
            format!("pulsar2mysql_partition_done{{{}}} 1", p(1)),
            format!("pulsar2mysql_partition_done{{{}}} 0", p(2))
        ]
    );
    // Before any partition reports, the families are left out (no HELP/TYPE alone).
    let empty = render(&Stats::default(), &meta(), None, None);
    assert!(!empty.contains("pulsar2mysql_partition_"), "{empty}");
}

#[test]
fn batch_duration_histogram() {
    let text = render(&busy_stats(), &meta(), None, None);
    let name = "pulsar2mysql_batch_duration_seconds";
    let counts = [0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3];
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf",
    ];
    let mut want: Vec<String> = les
        .iter()
        .zip(counts)
        .map(|(le, n)| format!("{name}_bucket{{{L},le=\"{le}\"}} {n}"))
        .collect();
    want.push(format!("{name}_sum{{{L}}} 102.02"));
    want.push(format!("{name}_count{{{L}}} 3"));
    assert_eq!(samples(&text, name), want);
}

#[test]
fn end_of_a_successful_run() {
    let text = render(
        &busy_stats(),
        &meta(),
        Some(&summary(0, "success")),
        Some(1.0),
    );
    let one =
        |name: &str, v: &str| assert_eq!(samples(&text, name), [format!("{name}{{{L}}} {v}")]);
    one("pulsar2mysql_running", "0");
    one("pulsar2mysql_run_duration_seconds", "12.5");
    one("pulsar2mysql_run_end_timestamp_seconds", "1700000012.5");
    one("pulsar2mysql_exit_code", "0");
    one("pulsar2mysql_rows_per_second", "1234.5");
    // This run's end replaces the earlier success.
    one(LAST_SUCCESS, "1700000012.5");
    assert_eq!(
        samples(&text, "pulsar2mysql_outcome"),
        [format!("pulsar2mysql_outcome{{{L},outcome=\"success\"}} 1")]
    );
}

#[test]
fn end_of_a_failed_run_keeps_the_earlier_success() {
    let failed = summary(5, "bad_record_limit");
    let text = render(&busy_stats(), &meta(), Some(&failed), Some(1234.5));
    assert_eq!(
        samples(&text, "pulsar2mysql_exit_code"),
        [format!("pulsar2mysql_exit_code{{{L}}} 5")]
    );
    assert_eq!(
        samples(&text, LAST_SUCCESS),
        [format!("{LAST_SUCCESS}{{{L}}} 1234.5")]
    );
    let text = render(&busy_stats(), &meta(), Some(&failed), None);
    assert!(!text.contains(LAST_SUCCESS), "no success known");
}

#[test]
fn families_sorted_by_name_and_label_values_escaped() {
    let mut m = meta();
    m.job_id = "multi\nline \"job\" \\ x".into();
    let text = render(&busy_stats(), &m, Some(&summary(0, "success")), None);
    assert!(
        text.contains(r#"pulsar2mysql_running{job_id="multi\nline \"job\" \\ x","#),
        "{text}"
    );
    let names: Vec<_> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), FAMILIES.len());
}
