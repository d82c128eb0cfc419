//! `--db` URLs: `sqlite:///path/central.db` or
//! `postgres://user[:password]@host:port/db[?host=/socket/dir]`, with libpq's
//! `sslmode` and `sslrootcert` for TLS to PostgreSQL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why a `--db` URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad database URL {url:?}: {problem}")]
pub struct DbUrlError {
    pub url: String,
    pub problem: String,
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// An SQLite file (created when missing).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database.
    Postgres(PgUrl),
}

/// The parts of a PostgreSQL URL this receiver uses.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    pub user: String,
    pub password: Option<String>,
    /// A host name or address, or a unix socket directory (starts with `/`).
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub connect_timeout: Duration,
    pub tls: PgTls,
}

/// TLS to PostgreSQL, as libpq's `sslmode` and `sslrootcert` ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTls {
    /// `disable`, `allow`, `prefer` (and the default): no TLS.
    Off,
    /// `require`: encrypted, the server's certificate not checked.
    Require,
    /// `verify-ca` (or `require` with `sslrootcert`): the certificate must be
    /// signed by the CA in `root_cert`; any host name.
    VerifyCa { root_cert: PathBuf },
    /// `verify-full`: signed by the CA and issued for the host connected to.
    VerifyFull { root_cert: PathBuf },
}

impl PgTls {
    /// The `sslmode` this stands for.
    pub fn mode(&self) -> &'static str {
        match self {
            PgTls::Off => "disable",
            PgTls::Require => "require",
            PgTls::VerifyCa { .. } => "verify-ca",
            PgTls::VerifyFull { .. } => "verify-full",
        }
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for PgUrl {
    /// The URL with its password hidden, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.password.is_some() { ":***" } else { "" };
        if self.host.starts_with('/') {
            write!(
                f,
                "postgres://{}{password}@:{}/{}?host={}",
                self.user, self.port, self.dbname, self.host
            )?;
        } else {
            write!(
                f,
                "postgres://{}{password}@{}:{}/{}",
                self.user, self.host, self.port, self.dbname
            )?;
        }
        if self.tls != PgTls::Off {
            let join = if self.host.starts_with('/') { '&' } else { '?' };
            write!(f, "{join}sslmode={}", self.tls.mode())?;
        }
        Ok(())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            DbUrl::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}

impl DbUrl {
    /// Parses a `--db` URL.
    pub fn parse(url: &str) -> Result<DbUrl, DbUrlError> {
        let fail = |problem: &str| DbUrlError {
            url: redact(url),
            problem: problem.to_string(),
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(fail("no file path after sqlite://"));
            }
            return Ok(DbUrl::Sqlite {
                path: PathBuf::from(path),
            });
        }
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| {
                fail("expected sqlite:///path/file.db or postgres://user@host:port/db")
            })?;
        parse_postgres(rest)
            .map(DbUrl::Postgres)
            .map_err(|p| fail(&p))
    }
}

fn parse_postgres(rest: &str) -> Result<PgUrl, String> {
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let mut pg = PgUrl {
        user: "postgres".to_string(),
        password: None,
        host: String::new(),
        port: 5432,
        dbname: String::new(),
        connect_timeout: Duration::from_secs(5),
        tls: PgTls::Off,
    };
    let mut sslmode = String::from("prefer");
    let mut root_cert: Option<PathBuf> = None;
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(percent_decode(password)?)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            pg.user = percent_decode(user)?;
        }
        pg.password = password;
    }
    let (host, port) = split_host_port(hostport)?;
    pg.host = host;
    if let Some(port) = port {
        pg.port = port;
    }
    pg.dbname = percent_decode(path)?;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("parameter {pair:?} has no value"))?;
        let value = percent_decode(value)?;
        match key {
            "host" => pg.host = value,
            "port" => {
                pg.port = value
                    .parse()
                    .map_err(|_| format!("port {value:?} is not a number"))?
            }
            "user" => pg.user = value,
            "password" => pg.password = Some(value),
            "dbname" => pg.dbname = value,
            "connect_timeout" => {
                let seconds: u64 = value
                    .parse()
                    .map_err(|_| format!("connect_timeout {value:?} is not seconds"))?;
                pg.connect_timeout = Duration::from_secs(seconds);
            }
            "sslmode" => sslmode = value,
            "sslrootcert" => root_cert = Some(PathBuf::from(value)),
            "sslcert" | "sslkey" => {
                return Err(format!(
                    "{key}: client certificates are not supported; authenticate with a password (user:password@ or password=)"
                ));
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    pg.tls = tls_of(&sslmode, root_cert)?;
    if pg.host.is_empty() {
        // libpq's default on Debian: the local unix socket.
        pg.host = "/var/run/postgresql".to_string();
    }
    if pg.dbname.is_empty() {
        pg.dbname = pg.user.clone();
    }
    Ok(pg)
}

/// libpq's meaning of `sslmode` and `sslrootcert` (`require` with a root
/// certificate verifies the CA, as libpq does).
fn tls_of(sslmode: &str, root_cert: Option<PathBuf>) -> Result<PgTls, String> {
    let needs_root = |mode: &str| {
        format!(
            "sslmode={mode} needs sslrootcert=/path/ca.pem, the CA that signed PostgreSQL's certificate"
        )
    };
    match (sslmode, root_cert) {
        ("disable" | "allow" | "prefer", _) => Ok(PgTls::Off),
        ("require", None) => Ok(PgTls::Require),
        ("require" | "verify-ca", Some(root_cert)) => Ok(PgTls::VerifyCa { root_cert }),
        ("verify-full", Some(root_cert)) => Ok(PgTls::VerifyFull { root_cert }),
        (mode @ ("verify-ca" | "verify-full"), None) => Err(needs_root(mode)),
        (other, _) => Err(format!(
            "sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
        )),
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed [ in host")?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(port) => Some(
            port.parse()
                .map_err(|_| format!("port {port:?} is not a number"))?,
        ),
    };
    Ok((percent_decode(host)?, port))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "%-escapes are not UTF-8".to_string())
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[userinfo.len() + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str) -> PgUrl {
        match DbUrl::parse(url).expect("should succeed") {
            DbUrl::Postgres(pg) => pg,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            DbUrl::parse("sqlite:///var/lib/central.db").expect("should succeed"),
            DbUrl::Sqlite {
                path: "/var/lib/central.db".into()
            }
        );
        assert_eq!(
            DbUrl::parse("sqlite://./central.db").expect("should succeed"),
            DbUrl::Sqlite {
                path: "./central.db".into()
            }
        );
        assert!(DbUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn postgres_tcp_and_unix_socket() {
        let tcp = pg("postgres://kea:p%40ss@db.example:5433/central");
        assert_eq!(
            (tcp.user.as_str(), tcp.password.as_deref()),
            ("kea", Some("p@ss"))
        );
        assert_eq!(
            (tcp.host.as_str(), tcp.port, tcp.dbname.as_str()),
            ("db.example", 5433, "central")
        );
        assert_eq!(
            tcp.to_string(),
            "postgres://kea:***@db.example:5433/central"
        );

        let unix = pg("postgres://postgres@localhost:6000/central?host=/tmp/pg");
        assert_eq!((unix.host.as_str(), unix.port), ("/tmp/pg", 6000));
        let v6 = pg("postgresql://u@[::1]:5000/d");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5000));
        let bare = pg("postgres://");
        assert_eq!(
            (bare.host.as_str(), bare.user.as_str(), bare.dbname.as_str()),
            ("/var/run/postgresql", "postgres", "postgres")
        );
    }

    #[test]
    fn tls_modes_as_libpq_means_them() {
        assert_eq!(pg("postgres://u@h/d").tls, PgTls::Off);
        assert_eq!(pg("postgres://u@h/d?sslmode=prefer").tls, PgTls::Off);
        assert_eq!(pg("postgres://u@h/d?sslmode=require").tls, PgTls::Require);
        let ca = PathBuf::from("/etc/ssl/pg-ca.pem");
        assert_eq!(
            pg("postgres://u@h/d?sslmode=require&sslrootcert=/etc/ssl/pg-ca.pem").tls,
            PgTls::VerifyCa {
                root_cert: ca.clone()
            }
        );
        let full = pg(
            "postgres://u:pw@db.example:5432/d?sslmode=verify-full&sslrootcert=/etc/ssl/pg-ca.pem",
        );
        assert_eq!(full.tls, PgTls::VerifyFull { root_cert: ca });
        assert_eq!(
            full.to_string(),
            "postgres://u:***@db.example:5432/d?sslmode=verify-full"
        );
    }

    #[test]
    fn refusals_hide_the_password() {
        let error = DbUrl::parse("postgres://u:secret@h/d?sslmode=verify-full")
            .expect_err("should be refused");
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(error.problem.contains("sslrootcert"), "{error}");
        let error = DbUrl::parse("postgres://u@h/d?sslmode=on").expect_err("should be refused");
        assert!(error.problem.contains("verify-full"), "{error}");
        let error = DbUrl::parse("postgres://u@h/d?sslcert=/c.pem").expect_err("should be refused");
        assert!(error.problem.contains("client certificates"), "{error}");
        assert!(DbUrl::parse("mysql://x").is_err());
        assert!(DbUrl::parse("postgres://h:port/d").is_err());
    }
}
