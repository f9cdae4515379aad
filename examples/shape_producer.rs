//! Produces the benchmark's record shapes to a Pulsar topic, or prints them (one per line) so
//! that the baselines load exactly the same bytes. Used by `benches/e2e.sh`.
//!
//! Shapes (record `i`, deterministic):
//! - `seed`: `i|msg-i` (as `seed_producer`), into `sink_table`;
//! - `payload-1k`, `payload-10k`: `i|<text>`, the whole record 1,024 / 10,240 bytes, into
//!   `benches/sql/payload_table.sql` (`id`, `name TEXT`);
//! - `wide`: 20 fields of mixed types (integers, decimals, a double, DATE, DATETIME,
//!   DATETIME(3), CHAR, VARCHAR, a flag), six of them NULL (`\N`) on some records, ~260 bytes,
//!   into `benches/sql/wide_table.sql`.
//!
//! `cargo run --release --example shape_producer -- --shape wide --count 100000 --topic t`
//! `cargo run --release --example shape_producer -- --shape wide --count 100000 --print > f`

use clap::Parser;
use futures::future::try_join_all;
use pulsar::producer::ProducerOptions;
use pulsar::{Pulsar, TokioExecutor};
use std::fmt::Write as _;
use std::io::Write as _;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "pulsar://127.0.0.1:6650", env = "PULSAR_URL")]
    url: String,
    #[arg(long, default_value = "persistent://public/default/test")]
    topic: String,
    /// seed, payload-1k, payload-10k or wide
    #[arg(long, default_value = "seed")]
    shape: String,
    #[arg(long, default_value_t = 0)]
    start: u64,
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Write the records to stdout, one per line, instead of producing them.
    #[arg(long)]
    print: bool,
}

const CITIES: [&str; 8] = [
    "Amsterdam",
    "Berlin",
    "Chengdu",
    "Dakar",
    "Edinburgh",
    "Fortaleza",
    "Guangzhou",
    "Hanoi",
];
const STATUSES: [&str; 4] = ["new", "active", "suspended", "closed"];

struct Shape {
    kind: Kind,
    /// For payloads: printable filler, sliced per record.
    filler: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Seed,
    Payload(usize),
    Wide,
}

impl Shape {
    fn new(name: &str) -> anyhow::Result<Self> {
        let kind = match name {
            "seed" => Kind::Seed,
            "payload-1k" => Kind::Payload(1024),
            "payload-10k" => Kind::Payload(10240),
            "wide" => Kind::Wide,
            other => anyhow::bail!("unknown shape {other:?} (seed, payload-1k, payload-10k, wide)"),
        };
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,:;";
        let filler = (0..10240 + 128)
            .map(|k| alphabet[(k * 7 + k / 13) % alphabet.len()] as char)
            .collect();
        Ok(Shape { kind, filler })
    }

    /// Record `i` into `out` (cleared first).
    fn record(&self, i: u64, out: &mut String) {
        out.clear();
        match self.kind {
            Kind::Seed => {
                let _ = write!(out, "{i}|msg-{i}");
            }
            Kind::Payload(total) => {
                let _ = write!(out, "{i}|");
                let need = total.saturating_sub(out.len());
                let from = (i % 97) as usize;
                out.push_str(&self.filler[from..from + need]);
            }
            Kind::Wide => {
                let null = |cond: bool| if cond { Some(()) } else { None };
                let _ = write!(
                    out,
                    "{i}|{}|{}|{}|{}|",
                    (i % 200) as i64 - 100,
                    (i % 60000) as i64 - 30000,
                    ((i * 7919) % 4_000_000_000) as i64 - 2_000_000_000,
                    i * 1_000_003
                );
                match null(i.is_multiple_of(10)) {
                    Some(()) => out.push_str("\\N|"),
                    None => {
                        let _ = write!(out, "{}|", (i * 31) % 4_000_000_000);
                    }
                }
                let _ = write!(out, "{}.{:02}|", i % 10_000_000, i % 100);
                match null(i.is_multiple_of(7)) {
                    Some(()) => out.push_str("\\N|"),
                    None => {
                        let _ = write!(out, "{}.{:06}|", i % 1_000_000, (i * 37) % 1_000_000);
                    }
                }
                let _ = write!(out, "{}.25|", i % 1_000_000);
                let (mo, d, h, mi, s) =
                    (1 + i % 12, 1 + (i / 12) % 28, i % 24, i % 60, (i / 60) % 60);
                let _ = write!(out, "{}-{mo:02}-{d:02}|", 2000 + i % 30);
                let _ = write!(out, "2024-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}|");
                match null(i.is_multiple_of(5)) {
                    Some(()) => out.push_str("\\N|"),
                    None => {
                        let _ = write!(
                            out,
                            "2025-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}|",
                            i % 1000
                        );
                    }
                }
                let _ = write!(out, "C{:07}|", i % 10_000_000);
                let _ = write!(out, "customer name {i} of the benchmark|");
                match null(i.is_multiple_of(3)) {
                    Some(()) => out.push_str("\\N|"),
                    None => {
                        let _ = write!(out, "user.{i}@example.com|");
                    }
                }
                let _ = write!(out, "{}|", CITIES[(i % 8) as usize]);
                match null(i.is_multiple_of(4)) {
                    Some(()) => out.push_str("\\N|"),
                    None => {
                        let from = (i % 97) as usize;
                        let _ = write!(out, "note {}|", &self.filler[from..from + 60]);
                    }
                }
                let _ = write!(out, "{}|", i % 2);
                match null(i.is_multiple_of(6)) {
                    Some(()) => out.push_str("\\N|"),
                    None => {
                        let _ = write!(out, "{}|", i % 1000);
                    }
                }
                out.push_str(STATUSES[(i % 4) as usize]);
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shape = Shape::new(&args.shape)?;
    let mut rec = String::with_capacity(16 * 1024);
    if args.print {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        for i in args.start..args.start + args.count {
            shape.record(i, &mut rec);
            w.write_all(rec.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        return Ok(());
    }
    shape.record(args.start, &mut rec);
    // Entries of up to 500 records and ~1 MiB (the broker's message limit is 5 MiB).
    let per_entry = (1_048_576 / (rec.len() + 16)).clamp(1, 500);
    let client = Pulsar::builder(args.url.clone(), TokioExecutor)
        .build()
        .await?;
    let mut producer = client
        .producer()
        .with_topic(&args.topic)
        .with_options(ProducerOptions {
            batch_size: Some(per_entry as u32 + 1),
            batch_byte_size: Some(4 << 20),
            block_queue_if_full: true,
            ..Default::default()
        })
        .build()
        .await?;
    let started = std::time::Instant::now();
    let mut pending = Vec::with_capacity(per_entry);
    for i in args.start..args.start + args.count {
        shape.record(i, &mut rec);
        pending.push(producer.send_non_blocking(rec.as_bytes().to_vec()).await?);
        if pending.len() == per_entry {
            producer.send_batch().await?;
            try_join_all(pending.drain(..)).await?;
        }
    }
    producer.send_batch().await?;
    try_join_all(pending).await?;
    eprintln!(
        "produced {} {} records to {} in {:.1}s",
        args.count,
        args.shape,
        args.topic,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
