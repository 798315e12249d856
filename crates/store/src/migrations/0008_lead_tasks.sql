-- Reps' follow-up tasks marked done or skipped (a cadence step of a lead),
-- with who marked it and why. Only appended; the latest mark per
-- (lead, step) holds.
CREATE TABLE lead_task_marks (
    id INTEGER PRIMARY KEY,
    lead_id TEXT NOT NULL,
    step INTEGER NOT NULL CHECK (step >= 1),
    status TEXT NOT NULL CHECK (status IN ('done', 'skipped')),
    note TEXT,
    marked_by TEXT,
    marked_at TEXT NOT NULL
);
CREATE INDEX lead_task_marks_lead ON lead_task_marks(lead_id, step, id);
