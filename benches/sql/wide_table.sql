-- The wide shape's table (benches/e2e.sh, shape wide; records from examples/shape_producer.rs):
-- 20 columns of mixed types, six of them nullable, plus a defaulted create_time.
CREATE TABLE IF NOT EXISTS wide_table (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    c_tiny TINYINT NOT NULL,
    c_small SMALLINT NOT NULL,
    c_int INT NOT NULL,
    c_big BIGINT NOT NULL,
    c_uint INT UNSIGNED NULL,
    c_dec DECIMAL(12,2) NOT NULL,
    c_dec6 DECIMAL(18,6) NULL,
    c_double DOUBLE NOT NULL,
    c_date DATE NOT NULL,
    c_dt DATETIME NOT NULL,
    c_ts DATETIME(3) NULL,
    c_code CHAR(8) NOT NULL,
    c_name VARCHAR(64) NOT NULL,
    c_email VARCHAR(128) NULL,
    c_city VARCHAR(32) NOT NULL,
    c_note VARCHAR(255) NULL,
    c_flag TINYINT(1) NOT NULL,
    c_score INT NULL,
    c_status VARCHAR(16) NOT NULL,
    create_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
