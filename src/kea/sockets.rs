//! Which DHCP sockets a Kea process on this host has bound, from /proc: the
//! UDP sockets of /proc/net/udp and udp6 on Kea's DHCP port (67, 547, or its
//! `-p PORT`), matched to the process's descriptors (/proc/PID/fd). Where the
//! descriptors are hidden (the agent's unit runs with PrivateUsers, so the
//! kernel refuses another process's fd list), the sockets of Kea's user on
//! that port stand in; where the whole process is hidden (ProtectProc), Kea's
//! user is the owner of its unix control socket and the port the service's
//! own. Where even that cannot be seen, the answer says so: "cannot tell" is
//! never "not serving".

use super::Service;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// What could be seen of a Kea process's DHCP sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// The local addresses of its DHCP sockets (maybe none).
    Sockets(BTreeSet<SocketAddr>),
    /// Not visible from here, and why.
    CannotTell(String),
}

/// One line of /proc/net/udp{,6}.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UdpSocket {
    local: SocketAddr,
    uid: u32,
    inode: u64,
}

/// The DHCP sockets process `pid` (running `service`) has bound now.
/// `socket_owner`: the uid owning Kea's unix control socket, when known.
pub fn dhcp_sockets(pid: u32, service: Service, socket_owner: Option<u32>) -> Bound {
    dhcp_sockets_in(Path::new("/proc"), pid, service, socket_owner)
}

/// [`dhcp_sockets`] with /proc at `proc_root`, for tests.
pub fn dhcp_sockets_in(
    proc_root: &Path,
    pid: u32,
    service: Service,
    socket_owner: Option<u32>,
) -> Bound {
    let process = proc_root.join(pid.to_string());
    let comm = match std::fs::read_to_string(process.join("comm")) {
        Ok(comm) => comm,
        // Hidden (ProtectProc), or in another pid namespace or on another host.
        Err(_) => {
            let Some(owner) = socket_owner else {
                return Bound::CannotTell(format!(
                    "process {pid} (Kea's pid per status-get) is not visible here: hidden by the agent's sandbox, or Kea runs in another pid namespace or on another host"
                ));
            };
            let Some(port) = server_port(&[], service) else {
                return Bound::Sockets(BTreeSet::new());
            };
            return match udp_table(proc_root) {
                Ok(table) => Bound::Sockets(
                    table
                        .into_iter()
                        .filter(|s| s.local.port() == port && s.uid == owner)
                        .map(|s| s.local)
                        .collect(),
                ),
                Err(why) => Bound::CannotTell(why),
            };
        }
    };
    if !comm.trim().starts_with("kea-dhcp") {
        return Bound::CannotTell(format!(
            "process {pid} (Kea's pid per status-get) is {} here, not Kea: Kea runs on another host or in another pid namespace",
            comm.trim()
        ));
    }
    let cmdline = std::fs::read(process.join("cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let Some(port) = server_port(&args, service) else {
        return Bound::Sockets(BTreeSet::new());
    };
    let table = match udp_table(proc_root) {
        Ok(table) => table,
        Err(why) => return Bound::CannotTell(why),
    };
    let on_port = table.into_iter().filter(|s| s.local.port() == port);
    match socket_inodes(&process) {
        Ok(inodes) => Bound::Sockets(
            on_port
                .filter(|s| inodes.contains(&s.inode))
                .map(|s| s.local)
                .collect(),
        ),
        Err(hidden) => match process_uid(&process).or(socket_owner) {
            Some(uid) => {
                Bound::Sockets(on_port.filter(|s| s.uid == uid).map(|s| s.local).collect())
            }
            None => Bound::CannotTell(format!(
                "Kea's descriptors and user are hidden from the agent ({hidden})"
            )),
        },
    }
}

/// The UDP sockets of the agent's network namespace (Kea's, unless it runs in another).
fn udp_table(proc_root: &Path) -> Result<Vec<UdpSocket>, String> {
    let mut table = Vec::new();
    for (file, v6) in [("udp", false), ("udp6", true)] {
        match std::fs::read_to_string(proc_root.join("net").join(file)) {
            Ok(text) => table.extend(parse_udp_table(&text, v6)),
            Err(error) if v6 && error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("cannot read /proc/net/{file}: {error}")),
        }
    }
    Ok(table)
}

/// The port Kea serves DHCP on: `-p PORT` on its command line, else the
/// service's. None for D2, which binds no DHCP socket.
fn server_port(args: &[String], service: Service) -> Option<u16> {
    let default = match service {
        Service::Dhcp4 => 67,
        Service::Dhcp6 => 547,
        Service::D2 => return None,
    };
    let given = args
        .windows(2)
        .find(|pair| pair[0] == "-p")
        .and_then(|pair| pair[1].parse().ok());
    Some(given.unwrap_or(default))
}

/// The inodes of the sockets among `process`'s descriptors; Err when the
/// kernel does not show them.
fn socket_inodes(process: &Path) -> Result<BTreeSet<u64>, std::io::Error> {
    let mut inodes = BTreeSet::new();
    for entry in std::fs::read_dir(process.join("fd"))? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        {
            inodes.insert(inode);
        }
    }
    Ok(inodes)
}

/// The real uid of `process`, from its status (readable by everyone).
fn process_uid(process: &Path) -> Option<u32> {
    let status = std::fs::read_to_string(process.join("status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The sockets of a /proc/net/udp (or udp6) table. Pure.
fn parse_udp_table(text: &str, v6: bool) -> Vec<UdpSocket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, port) = fields.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = if v6 { ipv6(address)? } else { ipv4(address)? };
            Some(UdpSocket {
                local: SocketAddr::new(ip, port),
                uid: fields.get(7)?.parse().ok()?,
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// An IPv4 address as /proc prints it: one 32-bit word in host byte order.
fn ipv4(hex: &str) -> Option<IpAddr> {
    let word = u32::from_str_radix(hex, 16).ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes())))
}

/// An IPv6 address as /proc prints it: four 32-bit words in host byte order.
fn ipv6(hex: &str) -> Option<IpAddr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0100007F:2743 00000000:0000 07 00000000:00000000 00:00000000 00000000   105        0 4242 2 0000000000000000 0
  101: 0100007F:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 0
  102: 00000000:2743 00000000:0000 07 00000000:00000000 00:00000000 00000000   105        0 4343 2 0000000000000000 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
   5: 00000000000000000000000001000000:2743 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000   105        0 5151 2 0000000000000000 0
";

    fn local(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    #[test]
    fn proc_tables_parse() {
        let v4 = parse_udp_table(UDP, false);
        assert_eq!(v4.len(), 3);
        assert_eq!(
            v4[0],
            UdpSocket {
                local: local("127.0.0.1:10051"),
                uid: 105,
                inode: 4242
            }
        );
        assert_eq!(v4[1].local, local("127.0.0.1:67"));
        let v6 = parse_udp_table(UDP6, true);
        assert_eq!(v6[0].local, local("[::1]:10051"));
        assert!(parse_udp_table("header\ngarbage line\n", false).is_empty());
    }

    #[test]
    fn the_port_is_kea_s_own() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            server_port(&args(&["kea-dhcp4", "-c", "f"]), Service::Dhcp4),
            Some(67)
        );
        assert_eq!(
            server_port(
                &args(&["kea-dhcp6", "-c", "f", "-p", "1547"]),
                Service::Dhcp6
            ),
            Some(1547)
        );
        assert_eq!(server_port(&args(&["kea-dhcp-ddns"]), Service::D2), None);
    }

    /// A fake /proc with one Kea process (pid 7, uid 105) on port 10051.
    fn fake_proc(with_fds: bool) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        let process = root.path().join("7");
        std::fs::create_dir_all(root.path().join("net")).expect("mkdir");
        std::fs::create_dir_all(&process).expect("mkdir");
        std::fs::write(root.path().join("net/udp"), UDP).expect("udp");
        std::fs::write(root.path().join("net/udp6"), UDP6).expect("udp6");
        std::fs::write(process.join("comm"), "kea-dhcp4\n").expect("comm");
        std::fs::write(
            process.join("cmdline"),
            b"kea-dhcp4\0-c\0/etc/kea/k.conf\0-p\x0010051\0",
        )
        .expect("cmdline");
        std::fs::write(
            process.join("status"),
            "Name:\tkea-dhcp4\nUid:\t105\t105\t105\t105\n",
        )
        .expect("status");
        if with_fds {
            std::fs::create_dir(process.join("fd")).expect("fd");
            symlink("socket:[4242]", process.join("fd/15")).expect("fd 15");
            symlink("/dev/null", process.join("fd/0")).expect("fd 0");
        }
        root
    }

    #[test]
    fn sockets_are_matched_to_the_process_or_else_its_user() {
        let proc_root = fake_proc(true);
        assert_eq!(
            dhcp_sockets_in(proc_root.path(), 7, Service::Dhcp4, None),
            Bound::Sockets([local("127.0.0.1:10051")].into())
        );
        let hidden = fake_proc(false);
        assert_eq!(
            dhcp_sockets_in(hidden.path(), 7, Service::Dhcp4, None),
            Bound::Sockets(
                [
                    local("127.0.0.1:10051"),
                    local("0.0.0.0:10051"),
                    local("[::1]:10051")
                ]
                .into()
            ),
            "hidden descriptors: the sockets of Kea's user on its port"
        );
        assert!(matches!(
            dhcp_sockets_in(proc_root.path(), 8, Service::Dhcp4, None),
            Bound::CannotTell(_)
        ));
        assert_eq!(
            dhcp_sockets_in(proc_root.path(), 7, Service::D2, None),
            Bound::Sockets(BTreeSet::new())
        );
        // A hidden process: the control socket's owner, on the service's own port.
        assert_eq!(
            dhcp_sockets_in(proc_root.path(), 8, Service::Dhcp4, Some(0)),
            Bound::Sockets([local("127.0.0.1:67")].into()),
            "process 8 is hidden; uid 0 owns 127.0.0.1:67"
        );
    }
}
