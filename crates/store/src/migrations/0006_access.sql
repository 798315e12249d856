-- Access: API tokens, passwords, browser sessions and the audit log.

-- API tokens: only the SHA-256 of the token is kept (tokens are 256-bit
-- random values, so a fast hash is enough; the token itself is shown once).
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- Roles granted in pipewise on top of the imported `users.role` (an import
-- never touches them): `admin`.
CREATE TABLE user_grants (
    user_id TEXT NOT NULL,
    grant_name TEXT NOT NULL CHECK (grant_name IN ('admin')),
    granted_at TEXT NOT NULL,
    PRIMARY KEY (user_id, grant_name)
);

-- Passwords for browser sign-in: argon2id PHC strings.
CREATE TABLE user_credentials (
    user_id TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Browser sessions: only the SHA-256 of the session id is kept.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Who read or changed what. Append-only (the triggers refuse updates and
-- deletes) and hash-chained: each row's hash covers its fields and the
-- previous row's hash, so an edited or deleted row breaks the chain.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_id TEXT,
    action TEXT NOT NULL,
    route TEXT,
    ids TEXT NOT NULL,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_user ON audit_log(user_id, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
