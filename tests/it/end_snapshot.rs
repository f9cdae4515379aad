//! The end snapshot: pulsar-rs answers `get_last_message_id` from the consumer's engine task,
//! which blocks while the consumer's receiver queue is full. pulsar2mysql therefore asks on a
//! consumer of its own built with batch size 0, which (patched in vendor/pulsar) sends no Flow
//! and so receives nothing. These tests pin both facts against the real broker.

use std::time::Duration;

use futures::TryStreamExt;
use pulsar::consumer::{ConsumerOptions, InitialPosition};
use pulsar::{Consumer, Pulsar, SubType, TokioExecutor};

use crate::common::*;

async fn consumer(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
    batch_size: u32,
) -> Consumer<Vec<u8>, TokioExecutor> {
    client
        .consumer()
        .with_topic(topic)
        .with_subscription(unique("end-snapshot"))
        .with_subscription_type(SubType::Exclusive)
        .with_batch_size(batch_size)
        .with_options(
            ConsumerOptions::default()
                .durable(false)
                .with_initial_position(InitialPosition::Earliest)
                .with_receiver_queue_size(2000),
        )
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_consumer_without_permits_receives_nothing_and_always_answers() {
    let topic = topic("endsnap");
    produce(&topic, seed_records(0..20_000), 500).await;
    let client = Pulsar::builder(pulsar_url(), TokioExecutor)
        .build()
        .await
        .unwrap();

    // A reading consumer left unread: its queue fills and its engine blocks, so it can no
    // longer answer (this is why the snapshot has a consumer of its own).
    let mut reading = consumer(&client, &topic, 2000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let blocked = tokio::time::timeout(Duration::from_secs(3), reading.get_last_message_id()).await;
    assert!(
        blocked.is_err(),
        "pulsar-rs answered on a full queue; the separate snapshot consumer may no longer be needed"
    );

    // The snapshot consumer: Earliest, but no permits, so still nothing after a while.
    let mut probe = consumer(&client, &topic, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let last = tokio::time::timeout(Duration::from_secs(10), probe.get_last_message_id())
        .await
        .expect("the snapshot consumer answers")
        .unwrap();
    assert_eq!(last.len(), 1);
    assert!(last[0].entry_id < u64::MAX, "{last:?}");
    let got = tokio::time::timeout(Duration::from_millis(500), probe.try_next()).await;
    assert!(got.is_err(), "the snapshot consumer received a message");
}
