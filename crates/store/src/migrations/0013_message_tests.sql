-- Message tests: the probability the sending policy gave the variant it
-- sent (activities.template_id), so any other policy can be evaluated from
-- the logs.
ALTER TABLE activities ADD COLUMN selection_probability REAL;
CREATE INDEX activities_message_test ON activities(sequence_id, sequence_step, occurred_at)
    WHERE template_id IS NOT NULL;
