-- The campaign store, version 2: claims with leases (several dialers on one campaign),
-- the dialers' registry, the per-call event log. A MySQL twin of this file differs only in
-- column types.

-- A pending number claimed by a dialer (`claimed_by`, a `dialers.id`): the claim holds
-- while that dialer's lease runs (`dialers.lease_until`, which it renews); after that the
-- number is anyone's again. A started attempt keeps its dialer in `attempts.dialer`.
ALTER TABLE numbers ADD COLUMN claimed_by TEXT;
CREATE INDEX numbers_claimed_by ON numbers (claimed_by);

-- Which dialer runs the attempt and through which Asterisk (its ARI URL): when that
-- dialer's lease runs out, a dialer on the same Asterisk reconciles the call.
ALTER TABLE attempts ADD COLUMN dialer TEXT;
ALTER TABLE attempts ADD COLUMN asterisk TEXT;
-- The pace (attempts ended in the last minute).
CREATE INDEX attempts_ended_at ON attempts (ended_at);

-- Every dialer process that ran the campaign; alive while `lease_until` (Unix ms) is in
-- the future (it renews it), stopped cleanly when `stopped_at` is set.
CREATE TABLE dialers (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    asterisk TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    max_cc INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    stopped_at INTEGER
);

-- One row per state change of every call: originated, ringing, answered, bridged,
-- recording, ended (with the cause and outcome), and reconciled after a crash.
CREATE TABLE call_events (
    id INTEGER PRIMARY KEY,
    attempt_id INTEGER NOT NULL REFERENCES attempts (id),
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    cause INTEGER,
    detail TEXT,
    dialer TEXT
);
CREATE INDEX call_events_attempt ON call_events (attempt_id, id);
