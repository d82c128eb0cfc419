//! Kea reply bodies on arbitrary bytes: `Reply::parse` never panics, a reply
//! it reads survives `to_json` and back, and `strip_hash` removes exactly the
//! top-level `hash` of what it is given, whatever it stands beside. The
//! arguments also go through what the agent reads off status-get, list-commands,
//! config-get (HA relationships) and ha-heartbeat.
#![no_main]

use kea_sync_agent::kea::{Reply, Status, ha, strip_hash};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json::value::RawValue;

/// The arguments decoded the ways the agent decodes them; none may panic.
fn read_arguments(arguments: &RawValue) {
    let _ = serde_json::from_str::<Status>(arguments.get());
    let _ = serde_json::from_str::<Vec<String>>(arguments.get());
    let Ok(value) = serde_json::from_str::<Value>(arguments.get()) else {
        return;
    };
    let _ = ha::heartbeat_state(&value);
    let _ = ha::reported(value.get("high-availability"));
    for key in ["Dhcp4", "Dhcp6"] {
        let hooks = value
            .get(key)
            .and_then(|service| service.get("hooks-libraries"))
            .and_then(|hooks| serde_json::value::to_raw_value(hooks).ok());
        let _ = ha::relationships(hooks.as_deref());
    }
}

/// `strip_hash`'s result must be its input less the top-level `hash`.
fn check_strip_hash(arguments: Box<RawValue>) {
    let before: Option<Value> = serde_json::from_str(arguments.get()).ok();
    let Ok((cleaned, hash)) = strip_hash(arguments) else {
        return;
    };
    let mut expected = match before {
        Some(Value::Object(map)) => map,
        Some(_) => panic!("strip_hash accepted arguments that are not a map"),
        // Valid JSON that a value tree cannot hold (a number past f64, nesting
        // past 128): strip_hash only reads the top level, so it may pass.
        None => return,
    };
    let removed = expected.shift_remove("hash");
    assert_eq!(
        removed.as_ref().and_then(Value::as_str),
        hash.as_deref(),
        "the hash returned is not the one removed"
    );
    let after: Value = serde_json::from_str(cleaned.get())
        .unwrap_or_else(|e| panic!("strip_hash wrote invalid JSON ({e}): {}", cleaned.get()));
    assert_eq!(
        after,
        Value::Object(expected),
        "strip_hash changed more than the hash: {}",
        cleaned.get()
    );
}

fuzz_target!(|data: &[u8]| {
    let reply = match Reply::parse(data.to_vec()) {
        Ok(reply) => reply,
        Err(why) => {
            let _ = why.to_string();
            return;
        }
    };
    let again = Reply::parse(reply.to_json().into_bytes()).expect("to_json reads back");
    assert_eq!(again.outcome, reply.outcome);
    assert_eq!(again.text, reply.text);
    assert_eq!(
        again.arguments.as_ref().map(|a| a.get()),
        reply.arguments.as_ref().map(|a| a.get())
    );
    if let Some(arguments) = reply.arguments {
        read_arguments(&arguments);
        check_strip_hash(arguments);
    }
});
