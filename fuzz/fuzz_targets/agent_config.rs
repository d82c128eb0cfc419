//! The agent config parser (agent.toml) on arbitrary text: a config or a
//! positioned error, never a panic; and a config compared with itself is no
//! reconfiguration (SIGHUP of an unchanged file restarts nothing).
#![no_main]

use kea_sync_agent::agent::config::{AgentConfig, reconfiguration};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    // The agent reads its config with read_to_string: non-UTF-8 never gets here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match AgentConfig::parse(text, Path::new("/etc/kea-sync-agent/agent.toml")) {
        Ok(config) => config,
        Err(error) => {
            // The message names file, line and column: building it must not panic.
            let _ = error.to_string();
            return;
        }
    };
    let same = reconfiguration(&config, &config).expect("same state dir");
    assert!(same.is_empty(), "a config differs from itself: {same:?}");
    for service in &config.services {
        let _ = service.http_options();
        let _ = service.agent_config.where_to_set();
    }
});
