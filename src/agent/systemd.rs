//! systemd's notify protocol (`Type=notify`, `WatchdogSec`): one datagram to
//! $NOTIFY_SOCKET per message. A no-op when not started by systemd.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to systemd's notify socket, if there is one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::path::PathBuf)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC (and WATCHDOG_PID, which must be ours).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET")
            .filter(|path| !path.is_empty())
            .and_then(|path| {
                let path = std::path::PathBuf::from(path);
                // Abstract sockets ("@name") are not supported by std; systemd uses paths.
                UnixDatagram::unbound().ok().map(|s| (s, path))
            });
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// How often to ping the watchdog (half its timeout), if it is on.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    /// Sends `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// Sends a `STATUS=` line (what `systemctl status` shows).
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    /// Tells systemd the main loop is alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// Tells systemd the agent is stopping.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn send(&self, message: &str) {
        if let Some((socket, path)) = &self.socket
            && let Err(error) = socket.send_to(message.as_bytes(), path)
        {
            tracing::debug!(socket = %path.display(), %error, "cannot notify systemd");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_notify_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier {
            socket: Some((UnixDatagram::unbound().expect("socket"), path)),
            watchdog: Some(Duration::from_secs(30)),
        };
        notifier.ready("watching 2 files");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=watching 2 files");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn without_systemd_nothing_happens() {
        let notifier = Notifier {
            socket: None,
            watchdog: None,
        };
        notifier.ready("x");
        assert_eq!(notifier.watchdog_interval(), None);
    }
}
