//! Load generator for kea-sync-central (bench/central-ingest runs it): N
//! simulated agents, each posting v1 events one at a time like a real agent,
//! with a mix of small configs, 5 MB configs (gzipped, as the agent sends
//! bodies above 64 KiB), events without config, and configs that repeat.
//! Prints one JSON line: events/s, latency percentiles, statuses.

use clap::Parser;
use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
struct Args {
    /// The central's ingest URL.
    #[arg(long)]
    url: String,
    /// Simulated agents posting concurrently.
    #[arg(long, default_value_t = 50)]
    agents: u32,
    /// Stop after this long.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Or after this many events in all.
    #[arg(long, default_value_t = u64::MAX)]
    max_events: u64,
    /// Share of events carrying the large config, in percent.
    #[arg(long, default_value_t = 1.0)]
    large_percent: f64,
    /// Size of the large config's JSON, in bytes (about).
    #[arg(long, default_value_t = 5_000_000)]
    large_bytes: usize,
    /// First sequence number / id offset, so runs against one database do not repeat ids.
    #[arg(long, default_value_t = 0)]
    run: u32,
}

struct Shared {
    args: Args,
    client: reqwest::Client,
    /// Pre-gzipped `LARGE_JSON}` members, two variants (they repeat: stored once each).
    large_gzip: Vec<Vec<u8>>,
    started: Instant,
    sent: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<String, u64>,
    large: u64,
    bytes_sent: u64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let large_gzip = (0..2)
        .map(|variant| {
            let mut json = serde_json::to_string(&large_config(args.large_bytes, variant))?;
            json.push('}');
            Ok(gzip(json.as_bytes()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.agents as usize)
        .build()?;
    let shared = Arc::new(Shared {
        args,
        client,
        large_gzip,
        started: Instant::now(),
        sent: Default::default(),
    });
    let agents: Vec<_> = (0..shared.args.agents)
        .map(|i| tokio::spawn(agent(Arc::clone(&shared), i)))
        .collect();
    let mut tally = Tally::default();
    for agent in agents {
        let part = agent.await?;
        tally.latencies_us.extend(part.latencies_us);
        for (status, n) in part.statuses {
            *tally.statuses.entry(status).or_default() += n;
        }
        tally.large += part.large;
        tally.bytes_sent += part.bytes_sent;
    }
    let seconds = shared.started.elapsed().as_secs_f64();
    tally.latencies_us.sort_unstable();
    let percentile = |p: f64| {
        let n = tally.latencies_us.len();
        if n == 0 {
            0.0
        } else {
            tally.latencies_us[((n as f64 * p).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0
        }
    };
    let events = tally.latencies_us.len();
    println!(
        "{}",
        json!({
            "agents": shared.args.agents,
            "events": events,
            "large_events": tally.large,
            "seconds": (seconds * 100.0).round() / 100.0,
            "events_per_s": (events as f64 / seconds).round(),
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
            "max_ms": percentile(1.0),
            "mb_sent": tally.bytes_sent / 1_000_000,
            "statuses": tally.statuses,
        })
    );
    Ok(())
}

/// One agent: one request at a time, next sequence after each answer.
async fn agent(shared: Arc<Shared>, index: u32) -> Tally {
    let args = &shared.args;
    let host = format!("bench-{index:02}");
    let small: Vec<String> = (0..4).map(|v| small_config(index, v).to_string()).collect();
    let mut random = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(index + 1) << 17;
    let mut tally = Tally::default();
    let mut sequence = u64::from(args.run) * 1_000_000;
    while shared.started.elapsed() < args.duration
        && shared
            .sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            < args.max_events
    {
        sequence += 1;
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let roll = (random % 10_000) as f64 / 100.0;
        let id = format!("01K{:05}{:018}", index, sequence);
        let (kind, config) = if roll < args.large_percent {
            ("applied", Config::Large((sequence % 2) as usize))
        } else {
            match random / 10_000 % 10 {
                0 => ("rejected", Config::None),
                1 => ("drift", Config::None),
                2 => ("snapshot", Config::Small(&small[(sequence % 4) as usize])),
                _ => ("applied", Config::Small(&small[(sequence % 4) as usize])),
            }
        };
        let head = event_head(&id, &host, kind, sequence);
        let mut request = shared
            .client
            .post(&args.url)
            .header("content-type", "application/json")
            .header("idempotency-key", &id);
        let body = match config {
            Config::None => format!("{head}}}").into_bytes(),
            Config::Small(json) => format!("{head},\"config\":{json}}}").into_bytes(),
            Config::Large(variant) => {
                tally.large += 1;
                request = request.header("content-encoding", "gzip");
                // Two gzip members: this event's head, then the shared config.
                let mut body = gzip(format!("{head},\"config\":").as_bytes());
                body.extend_from_slice(&shared.large_gzip[variant]);
                body
            }
        };
        tally.bytes_sent += body.len() as u64;
        let sent = Instant::now();
        let status = match request.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16().to_string();
                let _ = response.bytes().await;
                status
            }
            Err(error) => format!("error: {error}"),
        };
        tally.latencies_us.push(sent.elapsed().as_micros() as u64);
        *tally.statuses.entry(status).or_default() += 1;
    }
    tally
}

enum Config<'a> {
    None,
    Small(&'a str),
    Large(usize),
}

/// The event without its closing brace.
fn event_head(id: &str, host: &str, kind: &str, sequence: u64) -> String {
    let text = match kind {
        "rejected" => {
            "DHCP4_PARSER_FAIL: failed to create or run parser for configuration element subnet4: a pool of type V4, with the following address range: 192.0.2.10-192.0.2.20 overlaps with an existing pool"
        }
        "drift" => "in-memory config differs from the file (config-set by another client?)",
        _ => "configuration successful",
    };
    let mut event = json!({
        "schema": "kea-sync-agent/event/v1",
        "id": id,
        "agent": {"host": host, "machine_id": "5f0c2a8e9b7d4c3aa1e2f3b4c5d6e7f8", "version": "0.1.0"},
        "service": "dhcp4",
        "kea_version": "2.2.0",
        "kind": kind,
        "sequence": sequence,
        "file": {"path": "/etc/kea/kea-dhcp4.conf", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
        "config_hash": "8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92",
        "text": text,
        "detected_at": "2025-01-31T12:00:00.000Z",
        "applied_at": "2025-01-31T12:00:00.250Z",
        "queued_at": "2025-01-31T12:00:00.300Z"
    });
    if kind == "drift" {
        event["drift"] = json!({"file_sha256": "9f86d081", "live_hash": "8d969eef"});
    }
    let mut text = event.to_string();
    text.pop();
    text
}

/// A small site's config (~6 KB): 8 subnets, a few reservations and options.
fn small_config(agent: u32, variant: u32) -> Value {
    let subnets: Vec<Value> = (0..8)
        .map(|s| {
            let net = format!("10.{agent}.{s}");
            json!({
                "id": s + 1, "subnet": format!("{net}.0/24"),
                "pools": [{"pool": format!("{net}.100 - {net}.199")}],
                "option-data": [{"code": 3, "name": "routers", "space": "dhcp4", "data": format!("{net}.1")}],
                "reservations": (0..4).map(|r| json!({"hw-address": format!("02:00:{agent:02x}:{s:02x}:00:{r:02x}"), "ip-address": format!("{net}.{}", 10 + r), "hostname": format!("printer-{s}-{r}")})).collect::<Vec<_>>()
            })
        })
        .collect();
    json!({"Dhcp4": {
        "valid-lifetime": 3600 + variant * 60,
        "interfaces-config": {"interfaces": ["eth0"]},
        "lease-database": {"type": "memfile", "persist": true, "name": "/var/lib/kea/kea-leases4.csv"},
        "control-socket": {"socket-type": "unix", "socket-name": "/run/kea/kea4-ctrl-socket"},
        "option-data": [{"code": 6, "name": "domain-name-servers", "space": "dhcp4", "data": "10.0.0.53, 10.0.1.53"}],
        "subnet4": subnets
    }})
}

/// A large site's config of about `bytes` bytes: subnets of 10 reservations.
fn large_config(bytes: usize, variant: u32) -> Value {
    let subnets: Vec<Value> = (0..(bytes / 1000).max(1) as u32)
        .map(|i| {
            let (a, b) = (i / 256 % 256, i % 256);
            json!({
                "id": i + 1, "subnet": format!("10.{a}.{b}.0/24"),
                "pools": [{"pool": format!("10.{a}.{b}.100 - 10.{a}.{b}.199")}],
                "reservations": (0..10).map(|r| json!({"hw-address": format!("02:{a:02x}:{b:02x}:00:00:{r:02x}"), "ip-address": format!("10.{a}.{b}.{}", 10 + r)})).collect::<Vec<_>>()
            })
        })
        .collect();
    json!({"Dhcp4": {"valid-lifetime": 4000 + variant, "subnet4": subnets}})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}
