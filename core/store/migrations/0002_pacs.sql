-- Issue 3 (PACS): the PACS nodes this workstation talks to, managed by admins (every change audited).
-- Timeouts in seconds; retries is the number of extra attempts after a dropped association (back-off doubles).
CREATE TABLE pacs_nodes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    ae_title TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    tls INTEGER NOT NULL DEFAULT 0,
    ca_file TEXT NOT NULL DEFAULT '',
    cert_file TEXT NOT NULL DEFAULT '',
    key_file TEXT NOT NULL DEFAULT '',
    dicomweb_url TEXT NOT NULL DEFAULT '',
    timeout_s REAL NOT NULL DEFAULT 30,
    retries INTEGER NOT NULL DEFAULT 3,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
