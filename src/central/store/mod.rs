//! The central's database: every event, every config version of every Kea
//! server, config bodies stored once per content hash. SQLite (embedded
//! default) and PostgreSQL run the same SQL (`sql.rs`) through `row.rs`'s
//! neutral parameters and rows.

mod pg_tls;
pub mod plan;
mod postgres;
mod records;
mod row;
mod sql;
mod sqlite;

pub use plan::{ConfigBody, Incoming};
pub use records::{EventInfo, ServerSummary, StorageStats, StoredVersion, VersionInfo};
pub use row::{Param, Row, Step, StepsOutcome};

use super::dburl::DbUrl;
use super::time::now_millis;
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use postgres::PgStore;
use sqlite::SqliteStore;
use std::io::{Read, Write};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the {backend} database {target}: {detail}")]
    Open {
        backend: &'static str,
        target: String,
        detail: String,
    },
    /// Down, full, locked, timed out: the caller may retry later (HTTP 503).
    #[error("the {backend} database is unavailable: {detail}")]
    Unavailable {
        backend: &'static str,
        detail: String,
    },
    #[error(
        "database schema version {found} is newer than this kea-sync-central knows ({known}): upgrade it"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("unexpected data in the database: {0}")]
    Data(String),
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now.
    New,
    /// The id was stored before; nothing written.
    Repeat,
}

/// An open, migrated store.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(Box<PgStore>),
}

impl Store {
    /// Opens (creating when needed) the database and runs pending migrations.
    /// `connections` bounds PostgreSQL's pool.
    pub async fn open(url: &DbUrl, connections: usize) -> Result<Store, StoreError> {
        let store = match url {
            DbUrl::Sqlite { path } => Store::Sqlite(SqliteStore::open(path).await?),
            DbUrl::Postgres(pg) => Store::Postgres(Box::new(PgStore::open(pg, connections).await?)),
        };
        let version = match &store {
            Store::Sqlite(_) => store.migrate().await?,
            Store::Postgres(pg) => {
                let lock = pg.migration_lock().await?;
                let version = store.migrate().await?;
                drop(lock);
                version
            }
        };
        tracing::info!(
            backend = store.backend(),
            schema_version = version,
            "database ready: {url}"
        );
        Ok(store)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => sqlite::BACKEND,
            Store::Postgres(_) => postgres::BACKEND,
        }
    }

    /// Whether the event id and the config hash are already stored.
    pub async fn precheck(
        &self,
        event_id: &str,
        content_hash: Option<&str>,
    ) -> Result<(bool, bool), StoreError> {
        let params = vec![
            Param::Text(event_id.into()),
            Param::Text(content_hash.unwrap_or("").into()),
        ];
        let rows = self.query(sql::PRECHECK, params).await?;
        let row = first(&rows)?;
        Ok((row.int(0)? > 0, row.int(1)? > 0))
    }

    /// Stores one event in one transaction.
    pub async fn ingest(&self, incoming: Incoming) -> Result<Stored, StoreError> {
        match self.run(plan::ingest_steps(incoming)).await? {
            StepsOutcome::Committed => Ok(Stored::New),
            StepsOutcome::Repeat => Ok(Stored::Repeat),
        }
    }

    /// Every server and service.
    pub async fn servers(&self) -> Result<Vec<ServerSummary>, StoreError> {
        let rows = self.query(sql::SERVERS, vec![]).await?;
        rows.iter().map(ServerSummary::from_row).collect()
    }

    /// One server and service, if it ever sent an event.
    pub async fn server(
        &self,
        server: &str,
        service: &str,
    ) -> Result<Option<ServerSummary>, StoreError> {
        let rows = self
            .query(
                sql::SERVER,
                vec![Param::Text(server.into()), Param::Text(service.into())],
            )
            .await?;
        rows.first().map(ServerSummary::from_row).transpose()
    }

    /// Versions newest first, numbered below `before` (all when `None`).
    pub async fn versions(
        &self,
        server: &str,
        service: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<VersionInfo>, StoreError> {
        let params = vec![
            Param::Text(server.into()),
            Param::Text(service.into()),
            Param::Int(before.unwrap_or(i64::MAX)),
            Param::Int(limit),
        ];
        let rows = self.query(sql::VERSIONS, params).await?;
        rows.iter().map(VersionInfo::from_row).collect()
    }

    /// One version with its full config.
    pub async fn version(
        &self,
        server: &str,
        service: &str,
        number: i64,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let params = vec![
            Param::Text(server.into()),
            Param::Text(service.into()),
            Param::Int(number),
        ];
        let mut rows = self.query(sql::VERSION_BODY, params).await?;
        let Some(mut row) = rows.pop() else {
            return Ok(None);
        };
        let info = VersionInfo::from_row(&row)?;
        let gzip = row.take_bytes(9)?;
        let config_json = tokio::task::spawn_blocking(move || gunzip(&gzip))
            .await
            .map_err(|e| StoreError::Data(format!("decompressing a config body: {e}")))??;
        Ok(Some(StoredVersion { info, config_json }))
    }

    /// The newest events of a server and service.
    pub async fn events(
        &self,
        server: &str,
        service: &str,
        limit: i64,
    ) -> Result<Vec<EventInfo>, StoreError> {
        let params = vec![
            Param::Text(server.into()),
            Param::Text(service.into()),
            Param::Int(limit),
        ];
        let rows = self.query(sql::EVENTS, params).await?;
        rows.iter().map(EventInfo::from_row).collect()
    }

    /// Counts and bytes of what is stored.
    pub async fn stats(&self) -> Result<StorageStats, StoreError> {
        let rows = self.query(sql::STATS, vec![]).await?;
        let row = first(&rows)?;
        let size_sql = match self {
            Store::Sqlite(_) => sqlite::DATABASE_BYTES,
            Store::Postgres(_) => postgres::DATABASE_BYTES,
        };
        let size = self.query(size_sql, vec![]).await?;
        Ok(StorageStats {
            events: row.int(0)?,
            versions: row.int(1)?,
            configs: row.int(2)?,
            config_bytes: row.int(3)?,
            config_json_bytes: row.int(4)?,
            database_bytes: first(&size)?.int(0)?,
        })
    }

    /// Proves the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query(sql::PING, vec![]).await.map(|_| ())
    }

    async fn migrate(&self) -> Result<i64, StoreError> {
        self.batch(sql::CREATE_SCHEMA_VERSION.to_string()).await?;
        let current = first(&self.query(sql::SCHEMA_VERSION, vec![]).await?)?.int(0)?;
        let known = sql::MIGRATIONS.last().map_or(0, |m| m.0);
        if current > known {
            return Err(StoreError::SchemaTooNew {
                found: current,
                known,
            });
        }
        for &(version, ddl) in sql::MIGRATIONS.iter().filter(|m| m.0 > current) {
            let ddl = ddl.replace("{bytes}", self.bytes_type());
            let record = Step {
                sql: sql::RECORD_MIGRATION,
                params: vec![Param::Int(version), Param::Int(now_millis())],
                must_insert: false,
            };
            match self {
                Store::Sqlite(s) => s.migration(ddl, record).await?,
                Store::Postgres(p) => p.migration(ddl, record).await?,
            }
            tracing::info!(
                backend = self.backend(),
                version,
                "applied schema migration"
            );
        }
        Ok(known)
    }

    fn bytes_type(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "BLOB",
            Store::Postgres(_) => "BYTEA",
        }
    }

    async fn batch(&self, sql: String) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.batch(sql).await,
            Store::Postgres(p) => p.batch(sql).await,
        }
    }

    async fn query(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>, StoreError> {
        match self {
            Store::Sqlite(s) => s.query(sql, params).await,
            Store::Postgres(p) => p.query(sql, params).await,
        }
    }

    async fn run(&self, steps: Vec<Step>) -> Result<StepsOutcome, StoreError> {
        match self {
            Store::Sqlite(s) => s.run(steps).await,
            Store::Postgres(p) => p.run(steps).await,
        }
    }
}

/// Compresses a config body for storage (fast gzip: bodies are large, CPU is scarce).
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 8), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(json);
    encoder.finish().unwrap_or_default()
}

fn gunzip(gzip: &[u8]) -> Result<String, StoreError> {
    let mut json = String::new();
    GzDecoder::new(gzip)
        .read_to_string(&mut json)
        .map_err(|e| StoreError::Data(format!("a stored config body does not decompress: {e}")))?;
    Ok(json)
}

fn first(rows: &[Row]) -> Result<&Row, StoreError> {
    rows.first()
        .ok_or_else(|| StoreError::Data("a query that returns one row returned none".into()))
}
