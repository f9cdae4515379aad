-- Records that could not become rows (--on-bad-record dead-letter), stored in the same
-- transaction as the good rows of their batch: none disappears without a trace.
CREATE TABLE IF NOT EXISTS p2m_dead_letter (
    id              BIGINT AUTO_INCREMENT PRIMARY KEY,
    job_id          VARCHAR(191)   NOT NULL,
    topic           VARCHAR(512)   NOT NULL,
    partition_index INT            NOT NULL,
    message_id      VARCHAR(64)    NOT NULL COMMENT 'ledger:entry[:batch_index]',
    publish_time    BIGINT         NOT NULL COMMENT 'epoch ms',
    payload         LONGBLOB       NOT NULL COMMENT 'the raw record bytes',
    reason          VARCHAR(32)    NOT NULL,
    detail          VARCHAR(1024)  NOT NULL,
    created_at      TIMESTAMP(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY uk_message (job_id, topic(191), partition_index, message_id),
    KEY idx_job_time (job_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
