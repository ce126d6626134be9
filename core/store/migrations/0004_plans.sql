-- Issue 7: treatment plans. The plans and approvals tables of 0001 were never written to; they are rebuilt here
-- with the workflow draft -> reviewed -> approved / rejected (superseded once a later version is approved).
-- Approved plans are immutable (a trigger refuses any change but approved -> superseded); signatures are
-- append-only. Every write goes with an audit entry in the same transaction (core/plan/repository.py).
DROP TABLE approvals;
DROP TABLE plans;

CREATE TABLE plans (
    id INTEGER PRIMARY KEY,
    study_fk INTEGER NOT NULL REFERENCES studies(id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'reviewed', 'approved', 'rejected', 'superseded')),
    payload TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    previous_fk INTEGER REFERENCES plans(id),
    created_by TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    UNIQUE (study_fk, version)
);

-- Electronic signatures: review, approval and rejection, each after the signer re-entered the password.
CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    plan_fk INTEGER NOT NULL REFERENCES plans(id),
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('reviewed', 'approved', 'rejected')),
    meaning TEXT NOT NULL,
    comment TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    signature TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX approvals_plan ON approvals(plan_fk);

CREATE TRIGGER plans_approved_immutable BEFORE UPDATE ON plans
WHEN OLD.status = 'approved' AND (NEW.status != 'superseded' OR NEW.payload != OLD.payload
    OR NEW.payload_sha256 != OLD.payload_sha256 OR NEW.version != OLD.version OR NEW.study_fk != OLD.study_fk)
BEGIN
    SELECT RAISE(ABORT, 'an approved plan is immutable: make a new version');
END;

CREATE TRIGGER plans_final_states BEFORE UPDATE ON plans
WHEN OLD.status IN ('rejected', 'superseded')
BEGIN
    SELECT RAISE(ABORT, 'a rejected or superseded plan is final: make a new version');
END;

CREATE TRIGGER plans_no_delete BEFORE DELETE ON plans
BEGIN
    SELECT RAISE(ABORT, 'plans are never deleted');
END;

CREATE TRIGGER approvals_no_update BEFORE UPDATE ON approvals
BEGIN
    SELECT RAISE(ABORT, 'signatures are append-only');
END;

CREATE TRIGGER approvals_no_delete BEFORE DELETE ON approvals
BEGIN
    SELECT RAISE(ABORT, 'signatures are append-only');
END;
