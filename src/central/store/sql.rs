//! The store's SQL, shared by both backends: written with `$1` placeholders
//! (SQLite runs it as `?1`), types both understand, `{bytes}` for the one
//! type whose name differs (BLOB / BYTEA).

/// Versioned migrations, applied in order, each in its own transaction.
pub const MIGRATIONS: &[(i64, &str)] = &[(1, MIGRATION_1), (2, MIGRATION_2), (3, MIGRATION_3)];

/// Creates the version table; safe to run every start.
pub const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)";
/// The newest applied migration (0 when none).
pub const SCHEMA_VERSION: &str =
    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_version";
/// Records a migration as applied.
pub const RECORD_MIGRATION: &str =
    "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)";

const MIGRATION_1: &str = "
CREATE TABLE configs (
    hash TEXT PRIMARY KEY,
    json_bytes BIGINT NOT NULL,
    body {bytes} NOT NULL,
    first_seen_ms BIGINT NOT NULL
);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    server TEXT NOT NULL,
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    agent_host TEXT NOT NULL,
    agent_machine_id TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    kea_version TEXT,
    file_path TEXT NOT NULL,
    file_sha256 TEXT,
    config_hash TEXT,
    content_hash TEXT REFERENCES configs (hash),
    text TEXT NOT NULL,
    drift_file_sha256 TEXT,
    drift_live_hash TEXT,
    detected_at TEXT NOT NULL,
    applied_at TEXT,
    queued_at TEXT NOT NULL,
    detected_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX events_by_server ON events (server, service, received_ms);
CREATE TABLE servers (
    server TEXT NOT NULL,
    service TEXT NOT NULL,
    version_count BIGINT NOT NULL,
    current_version BIGINT,
    content_hash TEXT,
    config_hash TEXT,
    kea_version TEXT,
    agent_host TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    last_applied_ms BIGINT,
    last_seen_ms BIGINT NOT NULL,
    last_event_kind TEXT NOT NULL,
    last_event_id TEXT NOT NULL,
    last_sequence BIGINT NOT NULL,
    last_text TEXT NOT NULL,
    drift_open BIGINT NOT NULL,
    reject_open BIGINT NOT NULL,
    PRIMARY KEY (server, service)
);
CREATE TABLE versions (
    server TEXT NOT NULL,
    service TEXT NOT NULL,
    number BIGINT NOT NULL,
    event_id TEXT NOT NULL UNIQUE REFERENCES events (id),
    content_hash TEXT NOT NULL REFERENCES configs (hash),
    kind TEXT NOT NULL,
    config_hash TEXT,
    detected_ms BIGINT NOT NULL,
    applied_ms BIGINT,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (server, service, number),
    FOREIGN KEY (server, service) REFERENCES servers (server, service)
);
";

/// A rejected edit's rollback and whether Kea served after the step
/// (1/0, NULL when the agent did not say).
const MIGRATION_2: &str = "
ALTER TABLE events ADD COLUMN rolled_back BIGINT;
ALTER TABLE events ADD COLUMN serving BIGINT;
";

/// What an HA server's agent reported (JSON arrays: the event's HA
/// relationships as the step left them, its warnings; NULL when none), and
/// the newest report per server.
const MIGRATION_3: &str = "
ALTER TABLE events ADD COLUMN ha TEXT;
ALTER TABLE events ADD COLUMN warnings TEXT;
ALTER TABLE servers ADD COLUMN ha TEXT;
";

/// Whether the event and the config body are already stored.
pub const PRECHECK: &str = "SELECT (SELECT COUNT(*) FROM events WHERE id = $1), \
    (SELECT COUNT(*) FROM configs WHERE hash = $2)";

/// A config body, once per content hash.
pub const INSERT_CONFIG: &str = "INSERT INTO configs (hash, json_bytes, body, first_seen_ms) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING";

/// The event itself; inserts nothing for a repeated id.
pub const INSERT_EVENT: &str = "INSERT INTO events (id, server, service, kind, sequence, agent_host, \
    agent_machine_id, agent_version, kea_version, file_path, file_sha256, config_hash, content_hash, \
    text, drift_file_sha256, drift_live_hash, detected_at, applied_at, queued_at, detected_ms, received_ms, \
    rolled_back, serving, ha, warnings) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
    $22, $23, $24, $25) \
    ON CONFLICT (id) DO NOTHING";

/// The server's state after the event. The inserted values are the state after
/// a first event; on conflict they are merged into the old state: a reject
/// stays open through a drift and vice versa, both close on applied/snapshot.
pub const UPSERT_SERVER: &str = "INSERT INTO servers (server, service, version_count, current_version, \
    content_hash, config_hash, kea_version, agent_host, agent_version, last_applied_ms, last_seen_ms, \
    last_event_kind, last_event_id, last_sequence, last_text, drift_open, reject_open, ha) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
    ON CONFLICT (server, service) DO UPDATE SET \
    version_count = servers.version_count + excluded.version_count, \
    current_version = CASE WHEN excluded.version_count > 0 THEN servers.version_count + 1 \
        ELSE servers.current_version END, \
    content_hash = COALESCE(excluded.content_hash, servers.content_hash), \
    config_hash = COALESCE(excluded.config_hash, servers.config_hash), \
    kea_version = COALESCE(excluded.kea_version, servers.kea_version), \
    agent_host = excluded.agent_host, \
    agent_version = excluded.agent_version, \
    last_applied_ms = COALESCE(excluded.last_applied_ms, servers.last_applied_ms), \
    last_seen_ms = excluded.last_seen_ms, \
    last_event_kind = excluded.last_event_kind, \
    last_event_id = excluded.last_event_id, \
    last_sequence = excluded.last_sequence, \
    last_text = excluded.last_text, \
    ha = excluded.ha, \
    drift_open = CASE excluded.last_event_kind WHEN 'rejected' THEN servers.drift_open \
        ELSE excluded.drift_open END, \
    reject_open = CASE excluded.last_event_kind WHEN 'drift' THEN servers.reject_open \
        ELSE excluded.reject_open END";

/// The version an applied/snapshot event makes, numbered by the server row just updated.
pub const INSERT_VERSION: &str = "INSERT INTO versions (server, service, number, event_id, content_hash, \
    kind, config_hash, detected_ms, applied_ms, received_ms) \
    SELECT server, service, current_version, CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS TEXT), \
    CAST($6 AS TEXT), CAST($7 AS BIGINT), CAST($8 AS BIGINT), CAST($9 AS BIGINT) \
    FROM servers WHERE server = $1 AND service = $2";

/// Every server and service.
pub const SERVERS: &str = "SELECT server, service, current_version, content_hash, config_hash, \
    kea_version, agent_host, agent_version, last_applied_ms, last_seen_ms, last_event_kind, \
    last_event_id, last_sequence, last_text, drift_open, reject_open, ha \
    FROM servers ORDER BY server, service";

/// One server and service.
pub const SERVER: &str = "SELECT server, service, current_version, content_hash, config_hash, \
    kea_version, agent_host, agent_version, last_applied_ms, last_seen_ms, last_event_kind, \
    last_event_id, last_sequence, last_text, drift_open, reject_open, ha \
    FROM servers WHERE server = $1 AND service = $2";

/// A page of versions, newest first, below a version number.
pub const VERSIONS: &str = "SELECT v.number, v.event_id, v.kind, v.content_hash, v.config_hash, \
    c.json_bytes, v.detected_ms, v.applied_ms, v.received_ms \
    FROM versions v JOIN configs c ON c.hash = v.content_hash \
    WHERE v.server = $1 AND v.service = $2 AND v.number < $3 ORDER BY v.number DESC LIMIT $4";

/// One version with its stored (compressed) config body.
pub const VERSION_BODY: &str = "SELECT v.number, v.event_id, v.kind, v.content_hash, v.config_hash, \
    c.json_bytes, v.detected_ms, v.applied_ms, v.received_ms, c.body \
    FROM versions v JOIN configs c ON c.hash = v.content_hash \
    WHERE v.server = $1 AND v.service = $2 AND v.number = $3";

/// A page of events, newest first.
pub const EVENTS: &str = "SELECT e.id, e.kind, e.sequence, e.text, e.detected_ms, e.applied_at, \
    e.received_ms, e.config_hash, v.number, e.rolled_back, e.serving, e.ha, e.warnings \
    FROM events e LEFT JOIN versions v ON v.event_id = e.id \
    WHERE e.server = $1 AND e.service = $2 ORDER BY e.received_ms DESC, e.id DESC LIMIT $3";

/// Counts and bytes of what is stored.
pub const STATS: &str = "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM versions), \
    (SELECT COUNT(*) FROM configs), \
    (SELECT CAST(COALESCE(SUM(LENGTH(body)), 0) AS BIGINT) FROM configs), \
    (SELECT CAST(COALESCE(SUM(json_bytes), 0) AS BIGINT) FROM configs)";

/// A trivial query proving the database answers.
pub const PING: &str = "SELECT CAST(1 AS BIGINT)";
