-- Issue 10: the end-to-end pipeline (core/pipeline). One row per run of the pipeline for one study and one row per
-- completed step with its outputs (JSON), so that a re-run after a failure resumes after the last completed step.
-- The study is keyed by its UID (a run starts before the study is in the store: the first step retrieves it).
CREATE TABLE pipeline_runs (
    id INTEGER PRIMARY KEY,
    study_uid TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'failed', 'done')),
    options TEXT NOT NULL DEFAULT '{}',
    failed_step TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 1,
    created_by TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX pipeline_runs_study ON pipeline_runs(study_uid, id);

CREATE TABLE pipeline_steps (
    run_fk INTEGER NOT NULL REFERENCES pipeline_runs(id),
    step TEXT NOT NULL,
    position INTEGER NOT NULL,
    outputs TEXT NOT NULL,
    seconds REAL NOT NULL,
    finished TEXT NOT NULL,
    PRIMARY KEY (run_fk, step)
);
