//! SQLite backend: one writer connection and one reader connection (WAL lets
//! the reader work while the writer commits), each behind a mutex and used
//! from tokio's blocking pool.

use super::StoreError;
use super::row::{Cell, Param, Row, Step, StepsOutcome};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior, params_from_iter};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub const BACKEND: &str = "sqlite";

/// Size of the database file (pages in use and free).
pub const DATABASE_BYTES: &str = "SELECT CAST(p.page_count * s.page_size AS BIGINT) FROM pragma_page_count() p, pragma_page_size() s";

/// An SQLite database file.
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating) the file in WAL mode with synchronous=NORMAL.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let target = path.display().to_string();
        let opened = tokio::task::spawn_blocking(move || -> rusqlite::Result<_> {
            let writer = connect(&path)?;
            writer.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            let reader = connect(&path)?;
            Ok((writer, reader))
        })
        .await;
        let fail = |detail: String| StoreError::Open {
            backend: BACKEND,
            target: target.clone(),
            detail,
        };
        let (writer, reader) = opened
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Runs statements without parameters or transaction (DDL).
    pub async fn batch(&self, sql: String) -> Result<(), StoreError> {
        blocking(&self.writer, move |conn| conn.execute_batch(&sql)).await
    }

    /// Applies one migration and records it, in one transaction.
    pub async fn migration(&self, ddl: String, record: Step) -> Result<(), StoreError> {
        blocking(&self.writer, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(&ddl)?;
            tx.execute(&dialect(record.sql), params_from_iter(&record.params))?;
            tx.commit()
        })
        .await
    }

    /// Runs a read query.
    pub async fn query(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, StoreError> {
        blocking(&self.reader, move |conn| {
            let mut statement = conn.prepare_cached(&dialect(sql))?;
            let columns = statement.column_count();
            let rows =
                statement.query_map(params_from_iter(&params), |row| read_row(row, columns))?;
            rows.collect()
        })
        .await
    }

    /// Runs `steps` in one transaction.
    pub async fn run(&self, steps: Vec<Step>) -> Result<StepsOutcome, StoreError> {
        blocking(&self.writer, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for step in &steps {
                let inserted = tx
                    .prepare_cached(&dialect(step.sql))?
                    .execute(params_from_iter(&step.params))?;
                if step.must_insert && inserted == 0 {
                    // Dropping the transaction rolls it back.
                    return Ok(StepsOutcome::Repeat);
                }
            }
            tx.commit()?;
            Ok(StepsOutcome::Committed)
        })
        .await
    }
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Param::Int(n) => n.to_sql(),
            Param::OptInt(n) => n.to_sql(),
            Param::Text(text) => text.to_sql(),
            Param::OptText(text) => text.to_sql(),
            Param::Bytes(bytes) => bytes.to_sql(),
        }
    }
}

fn connect(path: &PathBuf) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(conn)
}

async fn blocking<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    let conn = Arc::clone(conn);
    let done = tokio::task::spawn_blocking(move || {
        // A panic while holding the lock leaves SQLite itself consistent.
        let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        work(&mut conn)
    })
    .await;
    let unavailable = |detail: String| StoreError::Unavailable {
        backend: BACKEND,
        detail,
    };
    done.map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(e.to_string()))
}

/// The shared SQL's `$1` placeholders as SQLite's `?1`.
fn dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let numbered = c == '$' && chars.peek().is_some_and(char::is_ascii_digit);
        out.push(if numbered { '?' } else { c });
    }
    out
}

fn read_row(row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<Row> {
    let cells = (0..columns)
        .map(|i| {
            Ok(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                // No column holds reals; an aggregate that does is truncated.
                ValueRef::Real(f) => Cell::Int(f as i64),
                ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
                ValueRef::Blob(bytes) => Cell::Bytes(bytes.to_vec()),
            })
        })
        .collect::<rusqlite::Result<Vec<Cell>>>()?;
    Ok(Row(cells))
}

#[cfg(test)]
mod tests {
    use super::dialect;

    #[test]
    fn placeholders_become_sqlite_numbered_parameters() {
        assert_eq!(dialect("SELECT $1, '$x', $12"), "SELECT ?1, '$x', ?12");
    }
}
