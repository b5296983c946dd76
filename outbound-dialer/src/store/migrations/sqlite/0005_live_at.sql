-- The campaign store, version 5: when a live callee was there (`live_at`, Unix ms): the
-- answer, or the AMD verdict with --amd (a machine never gets one). The abandon rate counts
-- from it: a live-answered call is abandoned when no target was connected within 2 s of
-- it. Every dialer of a campaign reads the campaign's rate from here (the last 30 days,
-- per UTC day), over the index below (it covers the query). Added by the abandon-rate
-- control (outbound-dialer/src/rules/abandon.rs). The MySQL twin differs in the type.
ALTER TABLE attempts ADD COLUMN live_at INTEGER;
-- Attempts stored before version 5: a call connected to its target, or abandoned
-- (target_failed), was live at its answer (an AMD run's verdict came later; the
-- difference is not stored); an answered call never connected was one hung up during
-- AMD, not a live one.
UPDATE attempts SET live_at = answered_at
    WHERE answered_at IS NOT NULL
        AND (outcome = 'target_failed' OR target_connected_at IS NOT NULL);
CREATE INDEX attempts_live ON attempts (live_at, target_connected_at, state);
