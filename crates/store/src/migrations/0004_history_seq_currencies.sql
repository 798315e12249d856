-- pipewise schema, version 4.
--
-- 1. Two changes of one field at the same instant (a deal saved through two
--    stages at once, automation) are two history entries: `seq` orders them
--    (0, 1, ...), and only identical rows are duplicates.
-- 2. An opportunity's current values are dated (`state_at`).
-- 3. Amounts carry their currency (ISO 4217; empty = the corporate currency),
--    and dated exchange rates convert them. The corporate currency is a setting.

CREATE TABLE opportunity_history_v4 (
    opportunity_id TEXT NOT NULL REFERENCES opportunities(id) DEFERRABLE INITIALLY DEFERRED,
    field TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    value TEXT,
    old_value TEXT,
    PRIMARY KEY (opportunity_id, field, changed_at, seq)
) WITHOUT ROWID;
INSERT INTO opportunity_history_v4 (opportunity_id, field, changed_at, seq, value, old_value)
    SELECT opportunity_id, field, changed_at, 0, value, old_value FROM opportunity_history;
DROP TABLE opportunity_history;
ALTER TABLE opportunity_history_v4 RENAME TO opportunity_history;
CREATE INDEX opportunity_history_changed ON opportunity_history(changed_at);

ALTER TABLE opportunities ADD COLUMN currency TEXT;
-- When an opportunity's current values were observed (the import's as-of or the
-- row's effective time): history up to then describes the past, later history wins.
ALTER TABLE opportunities ADD COLUMN state_at TEXT;
ALTER TABLE opportunity_products ADD COLUMN currency TEXT;

-- From valid_from on, one unit of the corporate currency is `rate` units of
-- `currency` (Salesforce's DatedConversionRate convention).
CREATE TABLE exchange_rates (
    currency TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    rate REAL NOT NULL CHECK (rate > 0),
    PRIMARY KEY (currency, valid_from)
) WITHOUT ROWID;

-- Organisation-wide settings (the corporate currency).
CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
