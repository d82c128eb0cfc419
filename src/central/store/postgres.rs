//! PostgreSQL backend: a small pool of tokio-postgres connections (TLS when
//! the URL's `sslmode` asks, `pg_tls.rs`), each with its prepared statements,
//! made (again) on demand so a restarted database is picked up without
//! restarting the central. Migrations run under an advisory lock, so centrals
//! sharing one database (behind one load balancer) may start together.

use super::StoreError;
use super::pg_tls;
use super::row::{Cell, Param, Row, Step, StepsOutcome};
use crate::central::dburl::{PgTls, PgUrl};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

pub const BACKEND: &str = "postgres";

/// Size of the database on disk.
pub const DATABASE_BYTES: &str = "SELECT CAST(pg_database_size(current_database()) AS BIGINT)";

/// A store operation that takes longer than this fails (503) instead of hanging.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The advisory lock key every kea-sync-central takes while migrating
/// ("kea_sync" in ASCII): one migrates, the others wait and then find nothing to do.
const MIGRATION_LOCK: i64 = 0x6b65_615f_7379_6e63;

/// How long a central waits for another one's migration.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(300);

/// A PostgreSQL database reached over TCP or a unix socket.
pub struct PgStore {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    idle: Mutex<Vec<PgConn>>,
    permits: Semaphore,
}

struct PgConn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// A connection taken from the pool; it goes back only through `release`, so
/// one abandoned mid-operation (timeout, error) is closed instead of reused.
struct Lease<'a> {
    store: &'a PgStore,
    conn: PgConn,
    _permit: SemaphorePermit<'a>,
}

impl PgStore {
    /// Connects once to prove the database is reachable.
    pub async fn open(url: &PgUrl, connections: usize) -> Result<PgStore, StoreError> {
        let mut config = Config::new();
        config
            .user(&url.user)
            .dbname(&url.dbname)
            .host(&url.host)
            .port(url.port)
            .connect_timeout(url.connect_timeout)
            .application_name("kea-sync-central");
        if let Some(password) = &url.password {
            config.password(password);
        }
        let open_failed = |detail: String| StoreError::Open {
            backend: BACKEND,
            target: url.to_string(),
            detail,
        };
        let tls = pg_tls::connector(&url.tls).map_err(open_failed)?;
        if tls.is_some() {
            config.ssl_mode(SslMode::Require);
        }
        let store = PgStore {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(connections.max(1)),
        };
        let first = store.connect().await.map_err(|e| {
            let detail = e.to_string();
            open_failed(match tls_hint(&url.tls, &detail) {
                Some(hint) => format!("{detail} ({hint})"),
                None => detail,
            })
        })?;
        store.idle_list().push(first);
        Ok(store)
    }

    /// Takes the migration lock on a connection of its own (outside the pool,
    /// so a pool of one still migrates); dropping the lock closes it, which
    /// releases the lock even if the central dies midway.
    pub async fn migration_lock(&self) -> Result<MigrationLock, StoreError> {
        let conn = self.connect().await?;
        let taken: bool = conn
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(unavailable)?;
        if !taken {
            tracing::info!(
                "another kea-sync-central is migrating this database: waiting (at most {}s)",
                MIGRATION_LOCK_WAIT.as_secs()
            );
            let wait = conn
                .client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]);
            match tokio::time::timeout(MIGRATION_LOCK_WAIT, wait).await {
                Ok(done) => {
                    done.map_err(unavailable)?;
                }
                Err(_) => {
                    return Err(StoreError::Unavailable {
                        backend: BACKEND,
                        detail: format!(
                            "another kea-sync-central held the migration lock for over {}s: \
                             is one stuck? (SELECT pid FROM pg_locks WHERE locktype = 'advisory')",
                            MIGRATION_LOCK_WAIT.as_secs()
                        ),
                    });
                }
            }
        }
        Ok(MigrationLock { _conn: conn })
    }

    /// Runs statements without parameters or transaction (DDL).
    pub async fn batch(&self, sql: String) -> Result<(), StoreError> {
        bounded(async {
            let lease = self.lease().await?;
            lease
                .conn
                .client
                .batch_execute(&sql)
                .await
                .map_err(unavailable)?;
            lease.release();
            Ok(())
        })
        .await
    }

    /// Applies one migration and records it, in one transaction.
    pub async fn migration(&self, ddl: String, record: Step) -> Result<(), StoreError> {
        bounded(async {
            let mut lease = self.lease().await?;
            let tx = lease.conn.client.transaction().await.map_err(unavailable)?;
            tx.batch_execute(&ddl).await.map_err(unavailable)?;
            tx.execute(record.sql, &pg_params(&record.params))
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            lease.release();
            Ok(())
        })
        .await
    }

    /// Runs a read query.
    pub async fn query(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, StoreError> {
        bounded(async {
            let mut lease = self.lease().await?;
            let statement = lease.conn.statement(sql).await?;
            let rows = lease
                .conn
                .client
                .query(&statement, &pg_params(&params))
                .await
                .map_err(unavailable)?;
            lease.release();
            rows.iter().map(read_row).collect()
        })
        .await
    }

    /// Runs `steps` in one transaction, in two round trips: BEGIN and every
    /// step pipelined, then COMMIT (or ROLLBACK for a repeat). On an error the
    /// connection is dropped, which aborts the transaction.
    pub async fn run(&self, steps: Vec<Step>) -> Result<StepsOutcome, StoreError> {
        bounded(async {
            let mut lease = self.lease().await?;
            let mut statements = Vec::with_capacity(steps.len());
            for step in &steps {
                statements.push(lease.conn.statement(step.sql).await?);
            }
            let client = &lease.conn.client;
            let params: Vec<_> = steps.iter().map(|step| pg_params(&step.params)).collect();
            let mut pipeline: Vec<Pending<'_>> = Vec::with_capacity(steps.len() + 1);
            pipeline.push(Box::pin(async {
                client.batch_execute("BEGIN").await.map(|()| 0)
            }));
            for (statement, params) in statements.iter().zip(&params) {
                pipeline.push(Box::pin(client.execute(statement, params)));
            }
            let counts = join_all(pipeline).await;
            // A repeat is known by its event insert alone; the steps after it may
            // then fail (e.g. the version's unique event id) and are rolled back.
            let repeat = steps
                .iter()
                .zip(&counts[1..])
                .any(|(step, count)| step.must_insert && matches!(count, Ok(0)));
            if !repeat {
                // The first failure says why (later statements fail as "transaction aborted").
                if let Some(Err(error)) = counts.iter().find(|count| count.is_err()) {
                    return Err(unavailable_ref(error));
                }
            }
            let end = if repeat { "ROLLBACK" } else { "COMMIT" };
            client.batch_execute(end).await.map_err(unavailable)?;
            lease.release();
            Ok(if repeat {
                StepsOutcome::Repeat
            } else {
                StepsOutcome::Committed
            })
        })
        .await
    }

    async fn lease(&self) -> Result<Lease<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::Unavailable {
                backend: BACKEND,
                detail: e.to_string(),
            })?;
        let reusable = {
            let mut idle = self.idle_list();
            idle.retain(|conn| !conn.client.is_closed());
            idle.pop()
        };
        let conn = match reusable {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Lease {
            store: self,
            conn,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<PgConn, StoreError> {
        let client = match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(unavailable)?;
                tokio::spawn(watch_connection(connection));
                client
            }
            Some(tls) => {
                let (client, connection) = self
                    .config
                    .connect(tls.clone())
                    .await
                    .map_err(unavailable)?;
                tokio::spawn(watch_connection(connection));
                client
            }
        };
        Ok(PgConn {
            client,
            statements: HashMap::new(),
        })
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<PgConn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Held while migrating; see `PgStore::migration_lock`.
pub struct MigrationLock {
    _conn: PgConn,
}

async fn watch_connection(connection: impl Future<Output = Result<(), tokio_postgres::Error>>) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "postgres connection ended");
    }
}

/// What to check when a TLS connection fails on its certificate.
fn tls_hint(tls: &PgTls, detail: &str) -> Option<String> {
    if !detail.contains("certificate") {
        return None;
    }
    match tls {
        PgTls::VerifyFull { root_cert } => Some(format!(
            "check that {} is the CA that signed PostgreSQL's certificate and that the certificate \
             names the host in the URL; sslmode=verify-ca skips the name",
            root_cert.display()
        )),
        PgTls::VerifyCa { root_cert } => Some(format!(
            "check that {} is the CA that signed PostgreSQL's certificate",
            root_cert.display()
        )),
        PgTls::Off | PgTls::Require => None,
    }
}

impl Lease<'_> {
    fn release(self) {
        if !self.conn.client.is_closed() {
            self.store.idle_list().push(self.conn);
        }
    }
}

impl PgConn {
    async fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await.map_err(unavailable)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A statement in flight.
type Pending<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// Polls every future (in order, so tokio-postgres sends their requests in
/// order and pipelines them) until all are done.
async fn join_all<'a>(mut pending: Vec<Pending<'a>>) -> Vec<Result<u64, tokio_postgres::Error>> {
    let mut done: Vec<Option<Result<u64, tokio_postgres::Error>>> =
        pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, output) in pending.iter_mut().zip(done.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(result) => *output = Some(result),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

async fn bounded<T>(
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(OPERATION_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable {
                backend: BACKEND,
                detail: format!("no answer within {}s", OPERATION_TIMEOUT.as_secs()),
            })
        })
}

fn pg_params(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| -> &(dyn ToSql + Sync) {
            match param {
                Param::Int(n) => n,
                Param::OptInt(n) => n,
                Param::Text(text) => text,
                Param::OptText(text) => text,
                Param::Bytes(bytes) => bytes,
            }
        })
        .collect()
}

fn read_row(row: &tokio_postgres::Row) -> Result<Row, StoreError> {
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let cell = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map(|v| v.map_or(Cell::Null, Cell::Int))
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map(|v| v.map_or(Cell::Null, |n| Cell::Int(n.into())))
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
            row.try_get::<_, Option<String>>(i)
                .map(|v| v.map_or(Cell::Null, Cell::Text))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)
                .map(|v| v.map_or(Cell::Null, Cell::Bytes))
        } else {
            return Err(StoreError::Data(format!(
                "column {} has unexpected type {ty}",
                column.name()
            )));
        };
        cells.push(cell.map_err(|e| StoreError::Data(e.to_string()))?);
    }
    Ok(Row(cells))
}

fn unavailable(error: tokio_postgres::Error) -> StoreError {
    unavailable_ref(&error)
}

fn unavailable_ref(error: &tokio_postgres::Error) -> StoreError {
    let detail = match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    };
    StoreError::Unavailable {
        backend: BACKEND,
        detail,
    }
}
