-- A turn's speech time: the sum of its cues' own durations, so the silence
-- between cues of one speaker merged into a turn is not counted as talk.
-- NULL (turns written before, turns that speak throughout) reads as
-- end_ms - start_ms.
ALTER TABLE conversation_turns ADD COLUMN speech_ms INTEGER;
