//! kea-sync-central, the reference receiver of the upstream API
//! (docs/upstream-api.md): stores every event and config version of every Kea
//! server in SQLite or PostgreSQL, and shows the fleet over HTTP.
//!
//! An event's way in (`ingest.rs`): bearer token -> bounded body -> gzip ->
//! v1 schema (`event.rs`) -> canonical config and content hash
//! (`canonical.rs`) -> one transaction (`store/`). Reading: the JSON API
//! (`http/`), the web page (`web/`), structural diffs (`diff/`).
//!
//! Run it: `kea-sync-central serve --db sqlite:///var/lib/kea-sync-central/central.db
//! --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --tokens-file tokens`
//! (`postgres://user@host:5432/db?sslmode=verify-full&sslrootcert=ca.pem`, or
//! `postgres://user@:5432/db?host=/run/postgresql` for a unix socket). Routes:
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/events` | the contract: 201 stored, 200 repeat, 400 (names `field`), 401, 408 (body too slow), 413, 415, 503 + `Retry-After` |
//! | `GET /v1/servers` | every server and service: version, hashes, last applied/seen, last event, `drift_open`, `reject_open` |
//! | `GET /v1/servers/{server}/{service}/versions?limit=&before=` | versions newest first; `next_before` pages on |
//! | `GET /v1/servers/{server}/{service}/versions/{n}` | version n with its full config |
//! | `GET /v1/servers/{server}/{service}/diff?from=N&to=M` | structural diff: subnets, pools, reservations, options, other keys; inherited copies under the change they follow (`followed_by`) |
//! | `GET /v1/servers/{server}/{service}/events?limit=` | the newest events |
//! | `GET /v1/stats` | counts and bytes stored |
//! | `GET /healthz` | 200 when the database answers, else 503 |
//! | `GET /`, `/servers/{server}/{service}`, `.../diff?from=&to=` | the web page |
//!
//! Versions are numbered 1, 2, ... per server and service, one per event with
//! a config (applied, snapshot, drift; each version keeps its kind). A reject
//! flag stays open until a later applied or snapshot, and so does a drift flag.

pub mod access;
pub mod body;
pub mod canonical;
pub mod cli;
pub mod dburl;
pub mod diff;
pub mod event;
pub mod http;
pub mod ingest;
pub mod nofile;
pub mod pairs;
pub mod review;
pub mod secrets;
pub mod store;
pub mod time;
pub mod tls;
pub mod tokens;
pub mod users;
pub mod web;
