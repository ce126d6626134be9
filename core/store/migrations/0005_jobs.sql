-- Job queue (core/jobs): results, cancellation, attempts, start/finish times. The jobs table of 0001 is kept.
ALTER TABLE jobs ADD COLUMN result TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested_by TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN study_uid TEXT;
ALTER TABLE jobs ADD COLUMN started TEXT;
ALTER TABLE jobs ADD COLUMN finished TEXT;
CREATE INDEX jobs_kind_status ON jobs(kind, status, id);
