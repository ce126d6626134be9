-- Issue 3 (retrieve speed): new instances' bytes live in AES-256-GCM encrypted files under <data dir>/instances/
-- (core/store/blobs.py) instead of SQLCipher pages, which cost about 1 CPU-second per 150 MB to write. The file key
-- is random and lives here, inside the encrypted database (a rekey of the database leaves the files as they are).
-- instances.blob names the file; NULL means the bytes are in instance_data (instances stored before this migration,
-- and stores restored from a backup, which carries every instance inline).
ALTER TABLE instances ADD COLUMN blob TEXT;

CREATE TABLE storage_keys (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL CHECK (length(key) = 32),
    created TEXT NOT NULL
);
