-- The campaign store, version 4: the do-not-call numbers, normalised as the number list's.
-- Checked right before each originate, so a number added here (by any dialer from its
-- `--dnc-file`, or by an operator's INSERT) is never dialled by any dialer of the campaign
-- from then on. `source` says where it came from (a file name, `api`, `operator`);
-- `added_at` is Unix ms. The SQLite twin differs in the column types.
CREATE TABLE dnc (
    number VARCHAR(32) NOT NULL PRIMARY KEY,
    source VARCHAR(255) NOT NULL,
    added_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
