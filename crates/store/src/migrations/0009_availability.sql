-- Where and when reps work: their time zone and working week, and the periods
-- they are away. Leads are routed to reps at work; the speed-to-lead clock runs
-- in the owner's hours.
ALTER TABLE users ADD COLUMN timezone TEXT;
ALTER TABLE users ADD COLUMN working_hours TEXT;

CREATE TABLE out_of_office (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    start_at TEXT NOT NULL,
    end_at TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX out_of_office_user ON out_of_office(user_id, start_at);
