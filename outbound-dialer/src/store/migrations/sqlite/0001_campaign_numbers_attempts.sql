-- The campaign store, version 1. A MySQL twin of this file differs only in column types
-- (BIGINT AUTO_INCREMENT ids, VARCHAR for indexed text); the queries are shared.

-- One row: the campaign this file belongs to and its run state, for other tools too.
CREATE TABLE campaign (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    input_fingerprint TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Every number of the list once; `state` moves pending -> dialing -> done.
CREATE TABLE numbers (
    id INTEGER PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL,
    line INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dialing', 'done'))
);

-- The dialer's next numbers (state = 'pending' in id order) and the counts by state.
CREATE INDEX numbers_state_id ON numbers (state, id);

-- Every attempt, written before its originate is sent; `state` moves
-- dialing -> answered -> connected -> ended (answered and connected may be skipped).
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    number_id INTEGER NOT NULL REFERENCES numbers (id),
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    channel_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('dialing', 'answered', 'connected', 'ended')),
    outcome TEXT,
    cause INTEGER,
    cause_text TEXT,
    message TEXT,
    originated_at INTEGER,
    answered_at INTEGER,
    target_connected_at INTEGER,
    ended_at INTEGER,
    target_channel_id TEXT,
    bridge_id TEXT,
    recording_name TEXT,
    recording_file TEXT,
    UNIQUE (number_id, attempt),
    CHECK ((state = 'ended') = (outcome IS NOT NULL AND ended_at IS NOT NULL))
);

-- What a restart reconciles (state <> 'ended') and the counts by outcome.
CREATE INDEX attempts_state_outcome ON attempts (state, outcome);
