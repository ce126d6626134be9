-- Issue 6: decision support feedback. A clinician accepts or overrides a recommendation (with a reason); each row
-- keeps what was shown (recommendation, rule ids, model versions, facts) and what was chosen, for override-rate
-- reports and as a retraining dataset. Append-only (triggers); every insert goes with an audit entry in the same
-- transaction (core/rules/feedback.py). JSON columns are canonical JSON text.
CREATE TABLE decision_feedback (
    id INTEGER PRIMARY KEY,
    created TEXT NOT NULL,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    patient_id TEXT NOT NULL DEFAULT '',
    decision TEXT NOT NULL CHECK (decision IN ('accept', 'override')),
    reason TEXT NOT NULL DEFAULT '',
    site TEXT NOT NULL,
    rule_ids TEXT NOT NULL,
    model_versions TEXT NOT NULL,
    recommendation TEXT NOT NULL,
    chosen TEXT NOT NULL,
    facts TEXT NOT NULL,
    CHECK (decision = 'accept' OR length(trim(reason)) >= 10)
);
CREATE INDEX decision_feedback_created ON decision_feedback(created);

CREATE TRIGGER decision_feedback_no_update BEFORE UPDATE ON decision_feedback
BEGIN
    SELECT RAISE(ABORT, 'decision feedback is append-only');
END;

CREATE TRIGGER decision_feedback_no_delete BEFORE DELETE ON decision_feedback
BEGIN
    SELECT RAISE(ABORT, 'decision feedback is append-only');
END;
