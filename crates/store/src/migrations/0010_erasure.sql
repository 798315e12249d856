-- Erasure (GDPR article 17, CCPA): models trained on an erased person's data
-- are marked for retraining, and audit rows that named the person have their
-- detail blanked. The audit log stays append-only otherwise: the one change
-- allowed is blanking a row's detail once, naming the erasure row that did it
-- (`redacted_by`); its hash and links are kept, so the chain still shows
-- every row and its place.
ALTER TABLE models ADD COLUMN retrain_reason TEXT;
ALTER TABLE audit_log ADD COLUMN redacted_by INTEGER;
DROP TRIGGER audit_log_no_update;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NOT (
    OLD.redacted_by IS NULL AND NEW.redacted_by IS NOT NULL AND NEW.redacted_by > OLD.seq
    AND NEW.detail IS NULL
    AND NEW.seq IS OLD.seq AND NEW.at IS OLD.at AND NEW.user_id IS OLD.user_id
    AND NEW.action IS OLD.action AND NEW.route IS OLD.route AND NEW.ids IS OLD.ids
    AND NEW.prev_hash IS OLD.prev_hash AND NEW.hash IS OLD.hash
)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only (an erasure may only blank a detail)'); END;
-- A running server reloads its data when an erasure or retention run
-- changed it (the serving version reads the latest such row by this index).
CREATE INDEX audit_log_action ON audit_log(action, seq);
