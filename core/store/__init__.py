"""The encrypted local store: SQLCipher database, key handling, users, roles and the audit trail."""
