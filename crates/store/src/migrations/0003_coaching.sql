-- What managers decided about coaching recommendations: accepted, edited or
-- dismissed, with the reason. Append-only: a later decision supersedes.
CREATE TABLE coaching_decisions (
    id INTEGER PRIMARY KEY,
    recommendation TEXT NOT NULL,
    rep_id TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('accepted', 'edited', 'dismissed')),
    reason TEXT,
    edited_text TEXT,
    decided_by TEXT,
    decided_at TEXT NOT NULL
);
CREATE INDEX coaching_decisions_rep ON coaching_decisions(rep_id, recommendation, id);
