-- The campaign store, version 1, for MySQL/MariaDB: the twin of
-- ../sqlite/0001_campaign_numbers_attempts.sql with MySQL's column types (BIGINT
-- AUTO_INCREMENT ids, VARCHAR for indexed text). The queries are shared.

CREATE TABLE campaign (
    id INT NOT NULL PRIMARY KEY CHECK (id = 1),
    name VARCHAR(100) NOT NULL,
    status VARCHAR(20) NOT NULL,
    input_fingerprint VARCHAR(255),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE numbers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    number VARCHAR(32) NOT NULL UNIQUE,
    data MEDIUMTEXT NOT NULL,
    line BIGINT NOT NULL,
    state VARCHAR(10) NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dialing', 'done'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE INDEX numbers_state_id ON numbers (state, id);

CREATE TABLE attempts (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    number_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL CHECK (attempt >= 1),
    channel_id VARCHAR(100) NOT NULL UNIQUE,
    state VARCHAR(10) NOT NULL CHECK (state IN ('dialing', 'answered', 'connected', 'ended')),
    outcome VARCHAR(32),
    cause BIGINT,
    cause_text TEXT,
    message TEXT,
    originated_at BIGINT,
    answered_at BIGINT,
    target_connected_at BIGINT,
    ended_at BIGINT,
    target_channel_id VARCHAR(100),
    bridge_id VARCHAR(100),
    recording_name VARCHAR(255),
    recording_file TEXT,
    UNIQUE (number_id, attempt),
    CONSTRAINT attempts_ended CHECK ((state = 'ended') = (outcome IS NOT NULL AND ended_at IS NOT NULL)),
    CONSTRAINT attempts_number FOREIGN KEY (number_id) REFERENCES numbers (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE INDEX attempts_state_outcome ON attempts (state, outcome);
