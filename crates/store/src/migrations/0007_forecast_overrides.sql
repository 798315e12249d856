-- Managers' overrides of the forecast: a deal taken out of it (or put back),
-- with the reason. Only appended; the latest row per deal holds.
CREATE TABLE forecast_overrides (
    id INTEGER PRIMARY KEY,
    opportunity_id TEXT NOT NULL,
    excluded INTEGER NOT NULL CHECK (excluded IN (0, 1)),
    reason TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT NOT NULL
);
CREATE INDEX forecast_overrides_deal ON forecast_overrides(opportunity_id, id);
