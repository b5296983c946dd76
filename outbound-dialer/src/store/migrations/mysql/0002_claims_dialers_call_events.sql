-- The campaign store, version 2, for MySQL/MariaDB: the twin of
-- ../sqlite/0002_claims_dialers_call_events.sql (claims with leases, the dialers'
-- registry, the per-call event log); comments there.

ALTER TABLE numbers ADD COLUMN claimed_by VARCHAR(100);
CREATE INDEX numbers_claimed_by ON numbers (claimed_by);

ALTER TABLE attempts ADD COLUMN dialer VARCHAR(100), ADD COLUMN asterisk VARCHAR(255);
CREATE INDEX attempts_ended_at ON attempts (ended_at);

CREATE TABLE dialers (
    id VARCHAR(100) NOT NULL PRIMARY KEY,
    app VARCHAR(255) NOT NULL,
    asterisk VARCHAR(255) NOT NULL,
    host VARCHAR(255) NOT NULL,
    pid BIGINT NOT NULL,
    max_cc BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    stopped_at BIGINT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE call_events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    attempt_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind VARCHAR(32) NOT NULL,
    cause BIGINT,
    detail TEXT,
    dialer VARCHAR(100),
    CONSTRAINT call_events_attempt_fk FOREIGN KEY (attempt_id) REFERENCES attempts (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE INDEX call_events_attempt ON call_events (attempt_id, id);
