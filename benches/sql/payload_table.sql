-- The payload shapes' table (benches/e2e.sh, shapes payload-1k and payload-10k): the seed's
-- sink_table with a TEXT column for the ~1 KiB / ~10 KiB records.
CREATE TABLE IF NOT EXISTS payload_table (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name TEXT NOT NULL,
    create_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
