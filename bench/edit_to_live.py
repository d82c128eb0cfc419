#!/usr/bin/env python3
"""Edit-to-live and idle-cost benchmark of kea-sync-agent against a real kea-dhcp4,
with the baselines measured in the same run (stdlib only).

    bench/edit_to_live.py --agent target/release/kea-sync-agent [--edits 50] [--idle 60]
                          [--subnets 0 --reservations 0] [--naive] [--storm] [--root DIR]

Per edit: the writer takes a timestamp just before it renames a new version into place;
the edit is live when Kea logs DHCP4_DYNAMIC_RECONFIGURATION_SUCCESS (its log carries
millisecond timestamps; everything runs with TZ=UTC, so they are read as UTC). Kea is
restarted on the current file before each method, so none meets a Kea grown by the
earlier methods' reloads. Baselines on the same Kea and config:
  config-get Kea's own config-get (round trip, whole reply read), on the fresh Kea
  floor      config-reload sent directly over the unix socket (round trip)
  validate   kea-dhcp4 -t of the file (what the agent adds before reloading)
  naive      an `inotifywait -m` + socat loop reloading on every close_write/moved_to
             (with --naive): what admins write by hand, no validation
Idle (with --idle N): CPU seconds, context switches (wake-ups) and RSS over N seconds,
for the agent and for the inotifywait loop.
Storm (with --storm): 100 saves per second for 10 s: reloads Kea performed, final content
live, invalid reloads (must be 0; every 10th save is invalid).
Root (with --root DIR, a debootstrap root from scripts/kea-roots): Kea, `kea-dhcp4 -t`, the
agent and the central run inside it (chroot), on the root's Kea; this script stays on the
host, in a private mount namespace, with the work dir bind-mounted into the root at its own
path (and /proc, /dev, /sys, as scripts/kea-matrix does), so both sides see the same files.
Kea 2.6.3+/3.0 take the control socket only in /run/kea and the log only in /var/log/kea:
both go there in the root, read from the host through ROOT/run/kea and ROOT/var/log/kea.
The naive loop (inotifywait + socat, which the root lacks) runs on the host against the
same paths: inotify and unix sockets work across the bind mount.
Prints the results as JSON on stdout.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*DHCP4_DYNAMIC_RECONFIGURATION_SUCCESS")
# One line per failed config-reload (DHCP4_CONFIG_LOAD_FAIL comes with it: not counted twice).
FAIL_RE = re.compile(r"DHCP4_DYNAMIC_RECONFIGURATION_FAIL")
# Kea 2.2 after a semantically bad config: the server is left without a working config.
UNRECOVERABLE = "DHCP4_CONFIG_UNRECOVERABLE_ERROR"


# Kea logs local time: with TZ=UTC for it (and for us) its timestamps are UTC whatever the
# host's zone, and are read as such.
os.environ["TZ"] = "UTC"
time.tzset()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Place:
    """Where the daemons run: on the host (root None), or chrooted into a debootstrap root
    with the work dir bind-mounted at its own path. Paths inside the work dir are the
    same on both sides; others (/run/kea, /var/log/kea) are seen from here under the root."""

    def __init__(self, root, work):
        self.root = root
        self.work = work
        self.mounts = []

    def cmd(self, argv, cwd=None):
        """argv as run in this place. chroot (and the shell's exec) exec: the process
        started is the daemon itself (its pid, its /proc). chroot chdirs to / unless
        told where to go (`cwd`, which Popen gets too on the host)."""
        if not self.root:
            return argv
        if cwd:
            return ["chroot", self.root, "/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd] + argv
        return ["chroot", self.root] + argv

    def env(self, **extra):
        env = dict(os.environ, **extra)
        if self.root:
            env["PATH"] = ROOT_PATH  # the root's kea-dhcp4 for the agent's validation
        return env

    def outside(self, path):
        """An in-root path as this script sees it."""
        return self.root + path if self.root else path

    def binary(self, path):
        """A host binary as the daemons' side can run it (copied into the work dir)."""
        if not self.root:
            return path
        bindir = os.path.join(self.work, "bin")
        os.makedirs(bindir, exist_ok=True)
        dest = os.path.join(bindir, os.path.basename(path))
        shutil.copy2(path, dest)
        return dest

    def kea_paths(self):
        """(control socket, log) as Kea's config names them: in the work dir on the host;
        in the root, where 2.6.3+/3.0 allow them (/run/kea, /var/log/kea), named after
        the work dir so parallel runs do not meet."""
        if not self.root:
            return os.path.join(self.work, "kea4.sock"), os.path.join(self.work, "kea.log")
        name = os.path.basename(self.work)
        return "/run/kea/%s.sock" % name, "/var/log/kea/%s.log" % name

    def mount(self):
        if not self.root:
            return
        inside = self.root + self.work
        os.makedirs(inside, exist_ok=True)
        for args, target in ((["--bind", self.work], inside), (["-t", "proc", "proc"], self.root + "/proc"),
                             (["--rbind", "/dev"], self.root + "/dev"), (["--rbind", "/sys"], self.root + "/sys")):
            subprocess.run(["mount"] + args + [target], check=True)
            self.mounts.append(target)

    def unmount(self):
        """Reverse order; lazily when busy. The namespace is private, so nothing is left
        on the host either way."""
        while self.mounts:
            target = self.mounts.pop()
            if subprocess.run(["umount", "-R", target], stderr=subprocess.DEVNULL).returncode != 0:
                subprocess.run(["umount", "-R", "-l", target])
        if self.root:
            try:
                os.rmdir(self.root + self.work)
            except OSError as e:
                log("left %s: %s" % (self.root + self.work, e))

    def kea_version(self):
        out = subprocess.run(self.cmd(["kea-dhcp4", "-V"]), capture_output=True, text=True, env=self.env()).stdout
        return (out.split() or ["?"])[0]


def running_as(proc, name):
    """Raises unless `proc` is `name` itself (chroot exec'd it; no wrapper in between)."""
    with open("/proc/%d/comm" % proc.pid) as f:
        comm = f.read().strip()
    if comm != name[:15]:
        raise SystemExit("pid %d is %s, not %s" % (proc.pid, comm, name))


class Kea:
    """A kea-dhcp4 in a temp dir, config generated with N subnets/reservations."""

    def __init__(self, work, place, subnets, reservations, lifetime=3600):
        self.work = work
        self.place = place
        self.conf = os.path.join(work, "kea-dhcp4.conf")
        # Kea's config names them as Kea sees them; this script uses them from outside.
        self.kea_sock, self.kea_log = place.kea_paths()
        self.sock, self.log = place.outside(self.kea_sock), place.outside(self.kea_log)
        self.log_offset, self.reload_times, self.reload_fails, self.unrecoverable = 0, [], 0, 0
        self.subnets = subnets
        self.reservations = reservations
        self.body = self.render_body()
        self.write(lifetime, atomic=False)
        old = time.time() - 3600
        os.utime(self.conf, (old, old))
        self.start()

    def start(self):
        """Starts kea-dhcp4 on the current file; returns once it answers version-get."""
        env = self.place.env(KEA_PIDFILE_DIR=self.work, KEA_LOCKFILE_DIR=self.work)
        self.proc = subprocess.Popen(self.place.cmd(["kea-dhcp4", "-c", self.conf], self.work), cwd=self.work, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30 + self.subnets / 500
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self.command({"command": "version-get"})["result"] == 0:
                    running_as(self.proc, "kea-dhcp4")
                    return
            except (OSError, ValueError):
                time.sleep(0.05)
        self.stop()
        raise SystemExit("kea-dhcp4 did not start; see " + self.log)

    def restart(self):
        """A fresh Kea on the current file: Kea's memory grows with each large reload, and
        the next method should not pay for the previous one's."""
        self.stop()
        self.start()

    def render_body(self):
        subnets = []
        per = -(-self.reservations // self.subnets) if self.subnets else 0
        left = self.reservations
        for i in range(self.subnets):
            a, b = divmod(i, 256)
            res = []
            for r in range(min(per, left)):
                res.append({"hw-address": "02:%02x:%02x:%02x:00:%02x" % (a, b, r // 256, r % 256),
                            "ip-address": "10.%d.%d.%d" % (a, b, 1 + r)})
            left -= len(res)
            subnets.append({"id": i + 1, "subnet": "10.%d.%d.0/24" % (a, b),
                            "pools": [{"pool": "10.%d.%d.100 - 10.%d.%d.250" % (a, b, a, b)}],
                            "reservations": res})
        return subnets

    def text(self, lifetime, valid=True):
        dhcp4 = {
            "interfaces-config": {"interfaces": []},
            "control-socket": {"socket-type": "unix", "socket-name": self.kea_sock},
            "lease-database": {"type": "memfile", "persist": False},
            "valid-lifetime": lifetime,
            "subnet4": self.body,
            # Kea logs one INFO line per subnet on every reload (dhcpsrv): 20,000 lines
            # would rotate the log away under the bench; keep INFO for the rest.
            "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": self.kea_log, "maxsize": 0}],
                         "severity": "INFO"},
                        {"name": "kea-dhcp4.dhcpsrv", "output_options": [{"output": self.kea_log, "maxsize": 0}],
                         "severity": "WARN"}],
        }
        if not valid:
            dhcp4["subnet4"] = [{"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": "198.51.100.1-198.51.100.9"}]}]
        return "# generated by bench/edit_to_live.py\n" + json.dumps({"Dhcp4": dhcp4})

    def write(self, lifetime, atomic=True, valid=True):
        """Writes a version; returns the time just before it is in place."""
        data = self.text(lifetime, valid)
        if not atomic:
            with open(self.conf, "w") as f:
                f.write(data)
            return time.time()
        tmp = self.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write(data)
        t0 = time.time()
        os.rename(tmp, self.conf)
        return t0

    def command(self, cmd):
        return json.loads(self.command_raw(cmd))

    def command_raw(self, cmd):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(120)
        s.connect(self.sock)
        s.sendall(json.dumps(cmd).encode())
        chunks = []
        while True:
            c = s.recv(1 << 20)
            if not c:
                break
            chunks.append(c)
        s.close()
        return b"".join(chunks)

    def reloads(self):
        """Timestamps (epoch s) of successful reconfigurations, and failures count
        (the log is read on from where the last call stopped)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        end = data.rfind(b"\n") + 1
        self.log_offset += end
        for line in data[:end].decode(errors="replace").splitlines():
            m = LOG_RE.match(line)
            if m:
                stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
                self.reload_times.append(stamp.replace(tzinfo=timezone.utc).timestamp())
            elif FAIL_RE.search(line):
                self.reload_fails += 1
            elif UNRECOVERABLE in line:
                self.unrecoverable += 1
        return list(self.reload_times), self.reload_fails

    def lifetime(self):
        return self.command({"command": "config-get"})["arguments"]["Dhcp4"]["valid-lifetime"]

    def stop(self):
        stop_process(self.proc)

    def remove_files(self):
        """The socket and log left outside the work dir (in the root)."""
        for path in (self.sock, self.sock + ".lock", self.log, self.log + ".lock"):
            if not path.startswith(self.work + "/"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass


def wait_reloads(kea, count, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        times, _ = kea.reloads()
        if len(times) >= count:
            return times
        time.sleep(0.002)
    raise SystemExit("timed out waiting for reload #%d; see %s" % (count, kea.log))


def pct(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(ms):
    return {"p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99), "n": len(ms)}


def central_sequence(url):
    """The newest event sequence the central stored for dhcp4 (0 before any)."""
    import urllib.request
    with urllib.request.urlopen(url + "/v1/servers", timeout=10) as r:
        servers = json.load(r)["servers"]
    return max([s["last_sequence"] for s in servers if s["service"] == "dhcp4"] or [0])


def edit_series(kea, edits, start_lifetime, gap=0.25, central_url=None, agent=None):
    """Makes `edits` renames, each waited to be live (and stored by the central);
    returns edit-to-live ms, edit-to-central ms, the last lifetime and, with `agent`
    (an Agent), its CPU seconds per apply. The next edit waits until the agent has
    logged its outcome, so one apply's verification never delays the next edit."""
    live, stored, cpu, t0s = [], [], [], []
    lifetime = start_lifetime
    for _ in range(edits):
        lifetime += 1
        before = len(kea.reloads()[0])
        if agent and central_url:
            # The central's newest sequence is this edit's baseline only once everything
            # queued before (the start-up snapshot) is stored.
            agent.wait_delivered(300)
        seq = central_sequence(central_url) if central_url else 0
        applied = agent.applied() if agent else 0
        cpu0 = proc_stats(agent.pid)[0] if agent else 0
        t0 = kea.write(lifetime)
        t0s.append(t0)
        times = wait_reloads(kea, before + 1, 300)
        live.append((times[before] - t0) * 1000)
        if agent:
            agent.wait_applied(applied + 1, 300)
        if central_url:
            deadline = time.time() + 300
            while central_sequence(central_url) <= seq:
                if time.time() > deadline:
                    raise SystemExit("the central did not store the event")
                time.sleep(0.003)
            stored.append((time.time() - t0) * 1000)
        if agent:
            cpu.append(proc_stats(agent.pid)[0] - cpu0)
        time.sleep(gap)
    edit_series.t0s = t0s
    return live, stored, lifetime, cpu


COMMAND_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*COMMAND_RECEIVED Received command '([\w-]+)'")
AGENT_APPLIED_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z .*outcome=Applied")


def kea_stamp(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def stages(kea_log, agent_log, t0s, stored_ms):
    """Where each agent edit's time went, from Kea's log (the commands it received, with ms
    stamps) and the agent's (its Applied line): p50 ms of each stage, and how many edits had
    Kea fetch its config before the reload."""
    commands, successes, applied = [], [], []
    with open(kea_log, errors="replace") as f:
        for line in f:
            m = COMMAND_RE.match(line)
            if m:
                commands.append((kea_stamp(m.group(1)), m.group(2)))
            m = LOG_RE.match(line)
            if m:
                successes.append(kea_stamp(m.group(1)))
    with open(agent_log, errors="replace") as f:
        for line in f:
            m = AGENT_APPLIED_RE.match(line)
            if m:
                applied.append(datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f")
                               .replace(tzinfo=timezone.utc).timestamp())
    first_after = lambda times, t: next((x for x in times if x >= t), None)
    rows = {"seen_read_first_question": [], "validate_and_keep_last_good": [], "kea_reload": [],
            "verify_serving": [], "fetch_config_and_queue": [], "gzip_post_store": []}
    fetched_before = 0
    for i, t0 in enumerate(t0s):
        first = first_after([t for t, _ in commands], t0)
        reload = first_after([t for t, name in commands if name == "config-reload"], t0)
        if first is None or reload is None:
            continue
        ok = first_after(successes, reload)
        done = first_after(applied, ok) if ok else None
        if ok is None or done is None:
            continue
        fetched_before += any(name == "config-get" and first <= t < reload for t, name in commands)
        # Kea's stamps are ms, the writer's µs: a stage never shows below 0.
        rows["seen_read_first_question"].append(max(0.0, first - t0) * 1000)
        rows["validate_and_keep_last_good"].append((reload - first) * 1000)
        rows["kea_reload"].append((ok - reload) * 1000)
        fetch = first_after([t for t, name in commands if name == "config-get"], ok)
        if fetch is not None and fetch <= done:
            rows["verify_serving"].append((fetch - ok) * 1000)
            rows["fetch_config_and_queue"].append(max(0.0, done - fetch) * 1000)
        if i < len(stored_ms):
            rows["gzip_post_store"].append(max(0.0, t0 + stored_ms[i] / 1000 - done) * 1000)
    out = {name: pct(values, 50) for name, values in rows.items() if values}
    out["edits"] = len(rows["kea_reload"])
    out["config_get_before_reload"] = fetched_before
    return out


def proc_stats(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    status = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    # Every thread: tokio and notify run a few.
    switches = sum(task_switches(pid).values())
    rss_kb = int(status["VmRSS"].split()[0])
    hwm_kb = int(status["VmHWM"].split()[0])
    return cpu, switches, rss_kb, hwm_kb


def tree_pids(pid):
    """A process and its children (the naive loop is a shell pipeline)."""
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(p) for p in out]
    except OSError:
        pass
    return pids


def tree_stats(pid):
    """Sums proc_stats over a process and its children."""
    total = [0.0, 0, 0, 0]
    for p in tree_pids(pid):
        try:
            s = proc_stats(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
        for i in range(4):
            total[i] += s[i]
    return total


def task_switches(pid):
    """Context switches of each thread of one process, by thread id."""
    counts = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except FileNotFoundError:
        return counts
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                counts[tid] = sum(int(line.split(":")[1]) for line in f
                                  if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
        except FileNotFoundError:
            pass
    return counts


def thread_switches(pid):
    """Context switches of every thread of a process tree, by (pid, tid)."""
    return {(p, tid): n for p in tree_pids(pid) for tid, n in task_switches(p).items()}


def idle(pid, seconds):
    """CPU, wake-ups and memory over `seconds` of quiet. Wake-ups are counted per thread
    (a thread that ends in the window, e.g. an idle tokio blocking thread, would otherwise
    take its earlier switches out of a summed total); a thread's switches after its start
    count in full, those of a thread gone by the end are not seen."""
    a, switches_a = tree_stats(pid), thread_switches(pid)
    time.sleep(seconds)
    b, switches_b = tree_stats(pid), thread_switches(pid)
    woken = {key: n - switches_a.get(key, 0) for key, n in switches_b.items() if n != switches_a.get(key, 0)}
    # Which threads woke (by name), to tell a timer from a thread pool winding down.
    by_name = {}
    for (p, tid), n in woken.items():
        try:
            with open("/proc/%d/task/%s/comm" % (p, tid)) as f:
                name = f.read().strip()
        except FileNotFoundError:
            name = "?"
        by_name[name] = by_name.get(name, 0) + n
    return {"cpu_s": b[0] - a[0], "wakeups": sum(woken.values()), "rss_kb": b[2], "hwm_kb": b[3],
            "threads": [len(switches_a), len(switches_b)], "wakeups_by_thread": by_name}


def start_central(binary, work, place):
    """kea-sync-central on SQLite on a free loopback port; returns (process, url)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    logf = open(os.path.join(work, "central.log"), "w")
    p = subprocess.Popen(place.cmd([binary, "serve", "--db", "sqlite://" + os.path.join(work, "central.db"),
                                    "--listen", "127.0.0.1:%d" % port, "--max-body-bytes", str(256 << 20)]),
                         stdout=logf, stderr=logf, env=place.env())
    url = "http://127.0.0.1:%d" % port
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            central_sequence(url)
            running_as(p, os.path.basename(binary))
            return p, url
        except OSError:
            time.sleep(0.05)
    stop_process(p)
    raise SystemExit("kea-sync-central did not start; see " + os.path.join(work, "central.log"))


class Agent:
    """kea-sync-agent run against the bench's Kea (and central)."""

    def __init__(self, binary, work, place, kea, settle_ms, central_url=None):
        toml = os.path.join(work, "agent.toml")
        with open(toml, "w") as f:
            # Its own admin socket: never the host's /run/kea-sync-agent. The periodic
            # check (default every 60 s) once an hour: the idle window holds none of it.
            f.write('[agent]\nstate_dir = "%s"\nsettle_ms = %d\nadmin_socket = "%s"\n'
                    'check_interval_s = 3600\n'
                    '[[service]]\nname = "dhcp4"\nconfig_file = "%s"\n'
                    % (os.path.join(work, "state"), settle_ms, os.path.join(work, "admin.sock"), kea.conf))
            if central_url:
                f.write('[upstream]\nurl = "%s/v1/events"\n' % central_url)
        self.log = os.path.join(work, "agent.log")
        logf = open(self.log, "w")
        # Its `kea-dhcp4 -t` gets the same lock and pid dirs as the bench's validate row.
        env = place.env(KEA_PIDFILE_DIR=work, KEA_LOCKFILE_DIR=work)
        self.proc = subprocess.Popen(place.cmd([binary, "run", "--config", toml]), stdout=logf, stderr=logf, env=env)
        self.pid = self.proc.pid
        # Ready: its start-up check is logged.
        deadline = time.time() + 120
        while time.time() < deadline and self.proc.poll() is None:
            with open(self.log) as f:
                if "outcome" in f.read():
                    running_as(self.proc, os.path.basename(binary))
                    return
            time.sleep(0.05)
        self.stop()
        raise SystemExit("agent did not start; see " + self.log)

    def wait_delivered(self, timeout):
        """Waits until the agent's outbox is empty: everything it queued is stored."""
        outbox = os.path.join(os.path.dirname(self.log), "state", "outbox")
        deadline = time.time() + timeout
        while os.path.isdir(outbox) and os.listdir(outbox):
            if time.time() > deadline:
                raise SystemExit("the agent's outbox %s did not empty; see %s" % (outbox, self.log))
            time.sleep(0.01)

    def applied(self):
        """How many applies the agent has logged."""
        with open(self.log) as f:
            return f.read().count("outcome=Applied")

    def wait_applied(self, count, timeout):
        deadline = time.time() + timeout
        while self.applied() < count:
            if time.time() > deadline:
                raise SystemExit("the agent did not log apply #%d; see %s" % (count, self.log))
            time.sleep(0.01)

    def stop(self):
        stop_process(self.proc)


def stop_process(p):
    """SIGTERM, then SIGKILL after 10 s: nothing of the bench outlives it."""
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def start_naive(kea):
    """The inotifywait + socat loop admins write by hand."""
    script = ('inotifywait -m -q -e close_write,moved_to --format %%f "%s" | while read f; do '
              '[ "$f" = "%s" ] && echo \'{"command":"config-reload"}\' | socat - UNIX-CONNECT:%s >/dev/null; done'
              % (os.path.dirname(kea.conf), os.path.basename(kea.conf), kea.sock))
    p = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    time.sleep(0.5)
    return p


def stop_group(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    p.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--edits", type=int, default=50)
    ap.add_argument("--idle", type=int, default=0)
    ap.add_argument("--subnets", type=int, default=2)
    ap.add_argument("--reservations", type=int, default=0)
    ap.add_argument("--settle-ms", type=int, default=50)
    ap.add_argument("--naive", action="store_true")
    ap.add_argument("--storm", action="store_true")
    ap.add_argument("--central", help="kea-sync-central binary: also measure edit to event stored (SQLite)")
    ap.add_argument("--root", help="a debootstrap root (scripts/kea-roots): run Kea, -t, the agent and the central in it")
    args = ap.parse_args()
    if args.root and os.environ.get("KEA_BENCH_PRIVATE_MOUNTS") != "1":
        # Mounts private to this run: none is seen on the host, and none outlives the run
        # even when it is killed (the namespace ends with its last process).
        os.environ["KEA_BENCH_PRIVATE_MOUNTS"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                              sys.executable] + sys.argv)

    work = tempfile.mkdtemp(prefix="kea-bench-")
    place = Place(os.path.realpath(args.root) if args.root else None, work)
    kea = None
    try:
        place.mount()
        agent_bin = place.binary(os.path.realpath(args.agent))
        central_bin = place.binary(os.path.realpath(args.central)) if args.central else None
        kea = Kea(work, place, args.subnets, args.reservations)
        results = {"config_bytes": os.path.getsize(kea.conf), "idle_seconds": args.idle,
                   "subnets": args.subnets, "reservations": args.reservations,
                   "kea_version": place.kea_version()}
        if place.root:
            results["root"] = place.root
            results["naive_on_host"] = True
        measure(args, work, place, kea, agent_bin, central_bin, results)
    finally:
        if kea:
            kea.stop()
            kea.remove_files()
        place.unmount()
        if os.environ.get("KEEP_BENCH_DIR"):
            log("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


def measure(args, work, place, kea, agent_bin, central_bin, results):
    """Every method in turn against `kea`, each on a freshly restarted Kea; fills `results`."""
    # Kea's own config-get on the fresh Kea: what the agent's push cannot beat. Its
    # reply is the in-memory config, the body the agent pushes.
    gets = 3 if args.subnets > 1000 else 5
    log("config-get x%d" % gets)
    got = []
    for _ in range(gets):
        t0 = time.time()
        reply = kea.command_raw({"command": "config-get"})
        got.append((time.time() - t0) * 1000)
        assert json.loads(reply)["result"] == 0
    results["config_get"] = summary(got)
    results["config_get_bytes"] = len(reply)

    log("floor: direct config-reload x%d, each followed by a config-get" % args.edits)
    # What Kea itself spends: its CPU per reload, its peak RSS. And its config-get right
    # after a reload: the one the agent makes to verify and push, met in the same state
    # (a Kea that has just reloaded answers it slower than a fresh one).
    kea.restart()
    floor, kea_cpu, got_after = [], [], []
    for _ in range(args.edits):
        cpu0 = proc_stats(kea.proc.pid)[0]
        t0 = time.time()
        r = kea.command({"command": "config-reload"})
        floor.append((time.time() - t0) * 1000)
        kea_cpu.append(proc_stats(kea.proc.pid)[0] - cpu0)
        assert r["result"] == 0, r
        if len(floor) == 1:
            results["kea_rss_after_first_reload_kb"] = proc_stats(kea.proc.pid)[2]
        t0 = time.time()
        reply = kea.command_raw({"command": "config-get"})
        got_after.append((time.time() - t0) * 1000)
        assert json.loads(reply)["result"] == 0
    results["floor"] = summary(floor)
    results["config_get_after_reload"] = summary(got_after)
    results["kea_cpu_per_reload"] = summary([c * 1000 for c in kea_cpu])
    results["kea_stats"] = dict(zip(["cpu_s", "switches", "rss_kb", "hwm_kb"], proc_stats(kea.proc.pid)))
    log("validate: kea-dhcp4 -t x%d" % min(args.edits, 20))
    kea.restart()
    val = []
    env = place.env(KEA_LOCKFILE_DIR=work, KEA_PIDFILE_DIR=work)
    for _ in range(min(args.edits, 20)):
        t0 = time.time()
        subprocess.run(place.cmd(["kea-dhcp4", "-t", kea.conf]), env=env, stdout=subprocess.DEVNULL, check=True)
        val.append((time.time() - t0) * 1000)
    results["validate"] = summary(val)

    lifetime = 4000
    if args.naive:
        log("naive loop: %d edits" % args.edits)
        kea.restart()
        naive = start_naive(kea)
        ms, _, lifetime, _ = edit_series(kea, args.edits, lifetime)
        results["naive"] = summary(ms)
        if args.idle:
            log("naive loop idle %d s" % args.idle)
            results["naive_idle"] = idle(naive.pid, args.idle)
        # What it costs not to validate: a broken file goes straight to Kea.
        before_fail, before_fatal = kea.reloads()[1], kea.unrecoverable
        kea.write(lifetime, valid=False)
        time.sleep(1.5)
        results["naive_invalid_reloads"] = kea.reloads()[1] - before_fail
        results["naive_unrecoverable"] = kea.unrecoverable - before_fatal
        before_ok = len(kea.reloads()[0])
        kea.write(lifetime)
        wait_reloads(kea, before_ok + 1, 300)
        stop_group(naive)

    log("agent: %d edits" % args.edits)
    kea.restart()
    central, central_url = start_central(central_bin, work, place) if central_bin else (None, None)
    agent = None
    try:
        agent = Agent(agent_bin, work, place, kea, args.settle_ms, central_url)
        time.sleep(0.5)
        ms, stored, lifetime, cpu = edit_series(kea, args.edits, lifetime, central_url=central_url,
                                                agent=agent)
        results["agent"] = summary(ms)
        results["agent_stages"] = stages(kea.log, agent.log, edit_series.t0s, stored)
        results["agent_cpu_per_apply"] = summary([c * 1000 for c in cpu])
        if stored:
            results["agent_to_central"] = summary(stored)
        before_fail = kea.reloads()[1]
        before_ok = len(kea.reloads()[0])
        kea.write(lifetime + 1, valid=False)
        time.sleep(1.5)
        results["agent_invalid_reloads"] = kea.reloads()[1] - before_fail + (len(kea.reloads()[0]) - before_ok)
        lifetime += 2
        applied = agent.applied()
        kea.write(lifetime)
        wait_reloads(kea, before_ok + 1, 300)
        agent.wait_applied(applied + 1, 300)
        if args.idle:
            time.sleep(1)
            log("agent idle %d s" % args.idle)
            results["agent_idle"] = idle(agent.pid, args.idle)
        if args.storm:
            log("storm: 100 saves/s for 10 s")
            ok_before, fail_before = len(kea.reloads()[0]), kea.reloads()[1]
            saves = 0
            t_end = time.time() + 10
            while time.time() < t_end:
                saves += 1
                lifetime += 1
                kea.write(lifetime, valid=(saves % 10 != 0))
                time.sleep(0.01)
            if saves % 10 == 0:
                lifetime += 1
                kea.write(lifetime)
            deadline = time.time() + 30
            while time.time() < deadline and kea.lifetime() != lifetime:
                time.sleep(0.05)
            time.sleep(1)
            results["storm"] = {"saves": saves, "reloads": len(kea.reloads()[0]) - ok_before,
                                "failed_reloads": kea.reloads()[1] - fail_before,
                                "final_live": kea.lifetime() == lifetime}
        if central_url:
            agent.wait_delivered(300)
        time.sleep(1)  # The agent's own writes after the push (its last good copy) end too.
        results["agent_stats_after"] = dict(zip(["cpu_s", "switches", "rss_kb", "hwm_kb"], proc_stats(agent.pid)))
    finally:
        if agent:
            agent.stop()
        if central:
            stop_process(central)


if __name__ == "__main__":
    main()
