-- The campaign store, version 5, for MySQL/MariaDB: the twin of ../sqlite/0005_live_at.sql
-- (`attempts.live_at`: when a live callee was there; the abandon rate of the campaign is
-- counted from it by every dialer); comments there.
ALTER TABLE attempts ADD COLUMN live_at BIGINT;
UPDATE attempts SET live_at = answered_at
    WHERE answered_at IS NOT NULL
        AND (outcome = 'target_failed' OR target_connected_at IS NOT NULL);
CREATE INDEX attempts_live ON attempts (live_at, target_connected_at, state);
