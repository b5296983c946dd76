-- The campaign store, version 4: the do-not-call numbers, normalised as the number list's.
-- Checked right before each originate, so a number added here (by the dialer from its
-- `--dnc-file`, or by an operator's INSERT) is never dialled from then on. `source` says
-- where it came from (a file name, `api`, `operator`); `added_at` is Unix ms. The MySQL
-- twin differs in the column types.
CREATE TABLE dnc (
    number TEXT NOT NULL PRIMARY KEY,
    source TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
