-- Checkpoints: per job, range and partition, the last message committed to the sink.
-- Written in the same transaction as the rows it covers (see src/sink/checkpoint.rs).
CREATE TABLE IF NOT EXISTS p2m_checkpoint (
    job_id          VARCHAR(191) NOT NULL,
    range_key       VARCHAR(191) NOT NULL,
    partition_index INT          NOT NULL COMMENT '-1 for a non-partitioned topic',
    ledger_id       BIGINT       NOT NULL,
    entry_id        BIGINT       NOT NULL,
    batch_index     INT          NOT NULL COMMENT '-1 when the message was not batched',
    publish_time    BIGINT       NOT NULL COMMENT 'epoch ms of the last committed message',
    records         BIGINT       NOT NULL DEFAULT 0 COMMENT 'records consumed in this range so far',
    updated_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (job_id, range_key, partition_index)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
