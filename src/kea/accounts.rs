//! Names of local users and groups, for error hints ("run as _kea").
//! Read from /etc/passwd and /etc/group: enough for the local accounts Kea
//! runs under, and no libc binding needed.

/// The name of user `uid`, or the number when it has none.
pub fn user_name(uid: u32) -> String {
    lookup("/etc/passwd", uid).unwrap_or_else(|| uid.to_string())
}

/// The name of group `gid`, or the number when it has none.
pub fn group_name(gid: u32) -> String {
    lookup("/etc/group", gid).unwrap_or_else(|| gid.to_string())
}

/// The gid of group `name` (a number is taken as it is).
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse() {
        return Some(gid);
    }
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name)
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// The uid of the running process, read from /proc (no libc needed).
pub fn current_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|effective| effective.parse().ok())
}

fn lookup(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    name_for_id(&text, id)
}

/// Finds the name with numeric id `id` in passwd/group formatted text.
fn name_for_id(text: &str, id: u32) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_id = fields.nth(1)?.parse::<u32>().ok()?;
        (entry_id == id).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_in_passwd_and_group_text() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n_kea:x:101:102::/var/lib/kea:/usr/sbin/nologin\n";
        assert_eq!(name_for_id(passwd, 101).as_deref(), Some("_kea"));
        assert_eq!(name_for_id(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_for_id(passwd, 7), None);
        let group = "root:x:0:\n_kea:x:102:\n";
        assert_eq!(name_for_id(group, 102).as_deref(), Some("_kea"));
    }

    #[test]
    fn current_uid_is_readable() {
        assert!(current_uid().is_some());
    }
}
