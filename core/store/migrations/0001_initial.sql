-- RadPlan store schema, version 1. Times are UTC ISO 8601 strings.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('radiologist', 'physicist', 'admin')),
    password_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created TEXT NOT NULL,
    last_login TEXT
);

CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL,
    issuer TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT '',
    UNIQUE (patient_id, issuer)
);

CREATE TABLE studies (
    id INTEGER PRIMARY KEY,
    patient_fk INTEGER NOT NULL REFERENCES patients(id),
    study_uid TEXT NOT NULL UNIQUE,
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'partial' CHECK (status IN ('partial', 'complete')),
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    study_fk INTEGER NOT NULL REFERENCES studies(id),
    series_uid TEXT NOT NULL UNIQUE,
    modality TEXT NOT NULL DEFAULT '',
    series_number INTEGER,
    description TEXT NOT NULL DEFAULT '',
    frame_of_reference_uid TEXT NOT NULL DEFAULT ''
);
CREATE INDEX series_study ON series(study_fk);

CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    series_fk INTEGER NOT NULL REFERENCES series(id),
    sop_uid TEXT NOT NULL UNIQUE,
    sop_class_uid TEXT NOT NULL,
    instance_number INTEGER,
    transfer_syntax TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    received TEXT NOT NULL
);
CREATE INDEX instances_series ON instances(series_fk);

-- The received bytes of each instance, unchanged. Kept apart from the row so metadata scans stay fast.
CREATE TABLE instance_data (
    instance_fk INTEGER PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    data BLOB NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    study_fk INTEGER REFERENCES studies(id),
    payload TEXT NOT NULL DEFAULT '{}',
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    worker_pid INTEGER,
    created_by TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX jobs_status ON jobs(status);

CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('segmentation', 'features', 'scores', 'nlp', 'recommendation')),
    study_fk INTEGER NOT NULL REFERENCES studies(id),
    series_fk INTEGER REFERENCES series(id),
    version INTEGER NOT NULL,
    producer TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_by TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (kind, study_fk, series_fk, version)
);

CREATE TABLE plans (
    id INTEGER PRIMARY KEY,
    study_fk INTEGER NOT NULL REFERENCES studies(id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'approved', 'rejected', 'superseded')),
    payload TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    UNIQUE (study_fk, version)
);

CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    plan_fk INTEGER NOT NULL REFERENCES plans(id),
    user_name TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    comment TEXT NOT NULL,
    signature TEXT NOT NULL,
    created TEXT NOT NULL
);

-- Append-only audit trail with a hash chain (see core/store/audit.py).
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'minor_failure', 'serious_failure', 'major_failure')),
    objects TEXT NOT NULL,
    details TEXT NOT NULL,
    break_glass INTEGER NOT NULL DEFAULT 0,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
