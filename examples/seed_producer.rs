//! Produces the seed scenario's records, `i|msg-i`, to a Pulsar topic, as the Java producer in
//! Apache InLong's Airflow example does. Used by the demo and the benchmarks.
//!
//! `cargo run --release --example seed_producer -- --topic test --count 10000 [--start 0]
//!  [--url pulsar://127.0.0.1:6650]`

use clap::Parser;
use futures::future::try_join_all;
use pulsar::producer::ProducerOptions;
use pulsar::{Pulsar, TokioExecutor};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "pulsar://127.0.0.1:6650", env = "PULSAR_URL")]
    url: String,
    #[arg(long, default_value = "persistent://public/default/test")]
    topic: String,
    #[arg(long, default_value_t = 0)]
    start: u64,
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Messages per batched entry (1 = no batching, as in the seed's Java snippet).
    #[arg(long, default_value_t = 1000)]
    batch: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Pulsar::builder(args.url.clone(), TokioExecutor)
        .build()
        .await?;
    let mut producer = client
        .producer()
        .with_topic(&args.topic)
        .with_options(ProducerOptions {
            batch_size: (args.batch > 1).then_some(args.batch),
            block_queue_if_full: true,
            ..Default::default()
        })
        .build()
        .await?;
    let started = std::time::Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for i in args.start..args.start + args.count {
        pending.push(
            producer
                .send_non_blocking(format!("{i}|msg-{i}").into_bytes())
                .await?,
        );
        if pending.len() == 500 {
            if args.batch > 1 {
                producer.send_batch().await?;
            }
            try_join_all(pending.drain(..)).await?;
        }
    }
    if args.batch > 1 {
        producer.send_batch().await?;
    }
    try_join_all(pending).await?;
    eprintln!(
        "produced {} records to {} in {:.1}s",
        args.count,
        args.topic,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
