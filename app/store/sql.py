"""The schema and the statements both engines share."""

# Each migration is a list of statements; the position in MIGRATIONS is the schema version.
# {table_options} is the engine's clause for the tables (SQLite: WITHOUT ROWID - a table keyed by
# its primary key alone, one b-tree fewer to write on every commit).
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS codes (
               address TEXT NOT NULL,
               appid TEXT NOT NULL,
               digest TEXT NOT NULL,
               expires_at BIGINT NOT NULL,
               attempts INTEGER NOT NULL DEFAULT 0,
               PRIMARY KEY (address, appid)){table_options}""",
        "CREATE INDEX IF NOT EXISTS codes_expires_at ON codes (expires_at)",
        """CREATE TABLE IF NOT EXISTS counters (
               key TEXT PRIMARY KEY,
               count INTEGER NOT NULL,
               expires_at BIGINT NOT NULL){table_options}""",
        "CREATE INDEX IF NOT EXISTS counters_expires_at ON counters (expires_at)",
    ],
    # 2: a right answer claims the code until mesibo has minted the token (see SqlStore.check_code)
    ["ALTER TABLE codes ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0"],
    # 3: the audit trail of login events, and the operator's block and allow lists
    [
        """CREATE TABLE IF NOT EXISTS events (
               id TEXT PRIMARY KEY,
               at BIGINT NOT NULL,
               expires_at BIGINT NOT NULL,
               subject TEXT NOT NULL,
               shown TEXT NOT NULL,
               event TEXT NOT NULL,
               detail TEXT NOT NULL,
               method TEXT NOT NULL,
               appid TEXT NOT NULL,
               client_ip TEXT NOT NULL,
               request_id TEXT NOT NULL){table_options}""",
        "CREATE INDEX IF NOT EXISTS events_subject ON events (subject, at)",
        "CREATE INDEX IF NOT EXISTS events_client_ip ON events (client_ip, at)",
        "CREATE INDEX IF NOT EXISTS events_expires_at ON events (expires_at)",
        """CREATE TABLE IF NOT EXISTS policy (
               pattern TEXT PRIMARY KEY,
               kind TEXT NOT NULL,
               note TEXT NOT NULL,
               added_at BIGINT NOT NULL){table_options}""",
    ],
    # 4: the tokens minted here, so that logout can revoke them at mesibo (app.tokens)
    [
        """CREATE TABLE IF NOT EXISTS tokens (
               key TEXT PRIMARY KEY,
               owner TEXT NOT NULL,
               sealed TEXT NOT NULL,
               appid TEXT NOT NULL,
               expires_at BIGINT NOT NULL){table_options}""",
        "CREATE INDEX IF NOT EXISTS tokens_owner ON tokens (owner)",
        "CREATE INDEX IF NOT EXISTS tokens_expires_at ON tokens (expires_at)",
    ],
    # 5: a sent code's message id, so that the provider's delivery receipt finds whom it was for
    [
        "ALTER TABLE events ADD COLUMN message_id TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX IF NOT EXISTS events_message_id ON events (message_id) WHERE message_id <> ''",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)

BUMP = """
INSERT INTO counters (key, count, expires_at) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN counters.expires_at <= ? THEN 1 ELSE counters.count + 1 END,
    expires_at = CASE WHEN counters.expires_at <= ? THEN excluded.expires_at ELSE counters.expires_at END
RETURNING count, expires_at"""

# The same for several counters at once (the parameters after the rows: now, now).
BUMP_MANY = """
INSERT INTO counters (key, count, expires_at) VALUES {values}
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN counters.expires_at <= ? THEN 1 ELSE counters.count + 1 END,
    expires_at = CASE WHEN counters.expires_at <= ? THEN excluded.expires_at ELSE counters.expires_at END
RETURNING key, count, expires_at"""

# Bumped by every unblock: a process's refusal hints from before are void (see RefusalHints).
GENERATION_KEY = "generation"
BUMP_GENERATION = """
INSERT INTO counters (key, count, expires_at) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET count = counters.count + 1
RETURNING count"""
