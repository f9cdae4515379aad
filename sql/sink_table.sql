-- The seed scenario's target table (Apache InLong's Airflow example).
CREATE TABLE IF NOT EXISTS sink_table (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    create_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
