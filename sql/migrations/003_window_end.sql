-- Where each publish-time window of a job stopped reading, per partition: the last position it
-- read (written or skipped), recorded when the partition finished. The job's next window
-- (whose `from` is this window's `to`) starts right after it, so consecutive windows cover the
-- log with no gap and no overlap even when publish times are out of storage order.
CREATE TABLE IF NOT EXISTS p2m_window_end (
    job_id          VARCHAR(191) NOT NULL,
    window_to       BIGINT       NOT NULL COMMENT 'the window''s end, epoch ms (exclusive)',
    partition_index INT          NOT NULL COMMENT '-1 for a non-partitioned topic',
    ledger_id       BIGINT       NOT NULL,
    entry_id        BIGINT       NOT NULL,
    batch_index     INT          NOT NULL COMMENT '-1 when the message was not batched',
    updated_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (job_id, window_to, partition_index)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
