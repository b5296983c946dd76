-- The campaign store, version 3: a pending number may wait until a time (a retry's delay,
-- the callee's calling window): claims skip it until `not_before` (Unix ms). Added by the
-- campaign rules (outbound-dialer/src/rules/). The SQLite twin differs in the column type.
ALTER TABLE numbers ADD COLUMN not_before BIGINT NULL;
