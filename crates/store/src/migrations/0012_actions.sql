-- Next-best actions: what each rep's list held on a day (so adherence can
-- be measured against what the CRM then records), and the actions reps
-- dismissed, with a reason. One row per (day, rep, target, action); a list
-- made again on the same day updates its row.
CREATE TABLE action_recommendations (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    rep_id TEXT NOT NULL,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('deal', 'lead', 'account')),
    target_id TEXT NOT NULL,
    account_id TEXT,
    action TEXT NOT NULL,
    channel TEXT NOT NULL,
    at TEXT NOT NULL,
    window_end TEXT NOT NULL,
    rank INTEGER NOT NULL,
    probability REAL NOT NULL,
    amount REAL NOT NULL,
    uplift REAL NOT NULL,
    expected_value REAL NOT NULL,
    why TEXT NOT NULL,
    made_at TEXT NOT NULL,
    UNIQUE (day, rep_id, target_kind, target_id, action)
);
CREATE INDEX action_recommendations_rep ON action_recommendations(rep_id, day);

CREATE TABLE action_dismissals (
    id INTEGER PRIMARY KEY,
    rep_id TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    action TEXT NOT NULL,
    -- The day of the list it was dismissed from (YYYY-MM-DD): the hiding
    -- runs from it.
    day TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('done', 'not_useful', 'wrong_timing', 'not_mine', 'other')),
    note TEXT,
    dismissed_by TEXT,
    dismissed_at TEXT NOT NULL
);
CREATE INDEX action_dismissals_rep ON action_dismissals(rep_id, day);
