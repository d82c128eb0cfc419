#!/usr/bin/env python3
"""How long both partners of an HA pair are out of their normal state at once when both
files are edited 100 ms apart (what Ansible does): a naive reload of each server as its
file lands, against one kea-sync-agent per server. Two kea-dhcp4 on loopback as a
hot-standby pair (HA's own listener); a sampler reads both servers' HA state with
status-get every 50 ms; the overlap is the time both were out of hot-standby together.
Markdown on stdout. Run as root (starts Kea); needs kea-dhcp4 and the agent binary.

    python3 bench/ha_overlap.py --agent target/release/kea-sync-agent --rounds 5
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOOKS = "/usr/lib/x86_64-linux-gnu/kea/hooks"
NORMAL = {"hot-standby", "load-balancing", "passive-backup", "backup"}
SAMPLE = 0.05


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(sock, text, timeout=5):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall(text.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def state(sock):
    try:
        reply = command(sock, '{"command":"status-get"}', timeout=1)
        return reply["arguments"]["high-availability"][0]["ha-servers"]["local"]["state"]
    except Exception:  # noqa: BLE001 - a server that does not answer is out
        return "down"


def config(dirname, this, ports, lifetime):
    names = ["server1", "server2"]
    peers = [
        {"name": names[i], "url": f"http://127.0.0.1:{ports[i]}/", "role": role, "auto-failover": True}
        for i, role in enumerate(["primary", "standby"])
    ]
    ha = {"high-availability": [{
        "this-server-name": names[this], "mode": "hot-standby",
        "heartbeat-delay": 1000, "max-response-delay": 3000, "max-ack-delay": 1000,
        "max-unacked-clients": 0,
        "multi-threading": {"enable-multi-threading": True, "http-dedicated-listener": True,
                            "http-listener-threads": 1, "http-client-threads": 1},
        "peers": peers}]}
    return {"Dhcp4": {
        "interfaces-config": {"interfaces": []},
        "control-socket": {"socket-type": "unix", "socket-name": f"{dirname}/sock"},
        "lease-database": {"type": "memfile", "persist": False},
        "multi-threading": {"enable-multi-threading": True, "thread-pool-size": 2, "packet-queue-size": 16},
        "hooks-libraries": [
            {"library": f"{HOOKS}/libdhcp_lease_cmds.so"},
            {"library": f"{HOOKS}/libdhcp_ha.so", "parameters": ha},
        ],
        "subnet4": [{"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": "192.0.2.100 - 192.0.2.200"}]}],
        "valid-lifetime": lifetime,
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": f"{dirname}/kea.log"}],
                     "severity": "INFO"}],
    }}


def write_config(path, body):
    temp = path + ".new"
    with open(temp, "w") as f:
        json.dump(body, f, indent=2)
    os.rename(temp, path)


class Sampler:
    def __init__(self, sockets):
        self.sockets = sockets
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), [state(s) for s in self.sockets]))
            time.sleep(SAMPLE)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.samples


def overlap(samples):
    """Seconds both were out together, and each one's time out (sample to sample)."""
    both = 0.0
    out = [0.0, 0.0]
    for (t0, states), (t1, _) in zip(samples, samples[1:]):
        flags = [s not in NORMAL for s in states]
        if all(flags):
            both += t1 - t0
        for i, flag in enumerate(flags):
            if flag:
                out[i] += t1 - t0
    return both, out


def wait(predicate, within, what):
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def live_lifetime(sock):
    return command(sock, '{"command":"config-get"}')["arguments"]["Dhcp4"]["valid-lifetime"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gap-ms", type=int, default=100)
    args = parser.parse_args()
    kea = shutil.which("kea-dhcp4") or sys.exit("kea-dhcp4 not found: run scripts/install-deps")
    root = tempfile.mkdtemp(prefix="kea-ha-bench-")
    procs = []
    try:
        ports = [free_port(), free_port()]
        dirs = [os.path.join(root, f"s{i + 1}") for i in range(2)]
        files, sockets = [], []
        for i, d in enumerate(dirs):
            os.makedirs(d)
            path = os.path.join(d, "kea-dhcp4.conf")
            write_config(path, config(d, i, ports, 4000))
            old = time.time() - 3600
            os.utime(path, (old, old))
            files.append(path)
            sockets.append(os.path.join(d, "sock"))
            env = dict(os.environ, KEA_PIDFILE_DIR=d, KEA_LOCKFILE_DIR=d)
            procs.append(subprocess.Popen([kea, "-c", path], cwd=d, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait(lambda: all(state(s) in NORMAL for s in sockets), 60, "the pair in hot-standby")
        version = command(sockets[0], '{"command":"version-get"}')["text"]
        lifetime = 4000
        results = {"naive": [], "agent": []}

        def round_trip(method, first):
            nonlocal lifetime
            lifetime += 1
            sampler = Sampler(sockets)
            time.sleep(0.3)
            start = time.monotonic()
            order = [first, 1 - first]
            for n, i in enumerate(order):
                write_config(files[i], config(dirs[i], i, ports, lifetime))
                if method == "naive":
                    command(sockets[i], '{"command":"config-reload"}', timeout=30)
                if n == 0:
                    time.sleep(args.gap_ms / 1000)
            wait(lambda: all(live_lifetime(s) == lifetime for s in sockets), 120, "both edits live")
            live = time.monotonic() - start
            wait(lambda: all(state(s) in NORMAL for s in sockets), 120, "the pair back to normal")
            time.sleep(0.5)
            both, out = overlap(sampler.finish())
            results[method].append({"both": both, "out": out, "live": live, "first": first})

        for r in range(args.rounds):
            round_trip("naive", r % 2)
        agents = []
        for i, d in enumerate(dirs):
            adir = os.path.join(root, f"agent{i + 1}")
            os.makedirs(adir)
            toml = os.path.join(adir, "agent.toml")
            with open(toml, "w") as f:
                f.write(f'[agent]\nstate_dir = "{adir}/state"\nadmin_socket = "{adir}/admin.sock"\n\n[[service]]\nname = "dhcp4"\n'
                        f'config_file = "{files[i]}"\ncontrol_socket = "{sockets[i]}"\n')
            log = open(os.path.join(adir, "agent.log"), "w")
            agents.append(subprocess.Popen([args.agent, "run", "--config", toml],
                                           stdout=log, stderr=log, env=dict(os.environ, NO_COLOR="1")))
        procs.extend(agents)
        # Each agent meets its Kea first (and reloads it once, in turn, as its state is empty).
        logs = [os.path.join(root, f"agent{i + 1}", "agent.log") for i in range(2)]
        wait(lambda: all(" outcome=" in open(log).read() for log in logs), 60, "the agents' first events")
        wait(lambda: all(state(s) in NORMAL for s in sockets), 60, "the pair in hot-standby")
        time.sleep(1)
        for r in range(args.rounds):
            round_trip("agent", r % 2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(root, ignore_errors=True)

    def ms(x):
        return f"{x * 1000:.0f}"

    print("## HA pair: time both partners were out of their normal state")
    print()
    print(f"Produced by `python3 bench/ha_overlap.py --agent target/release/kea-sync-agent --rounds {args.rounds}` "
          f"on {time.strftime('%Y-%m-%d')}; Kea {version}, a hot-standby pair on loopback (heartbeat-delay 1 s). "
          f"Each round edits both files {args.gap_ms} ms apart (standby first in every other round); "
          f"a sampler reads both HA states every {int(SAMPLE * 1000)} ms. naive: config-reload sent to each "
          "server as its file lands; agent: one kea-sync-agent per server, default `[ha]` settings.")
    print()
    print("| method | both out, median ms | both out, max ms | rounds with overlap | primary out, median ms | standby out, median ms | edits to both live, median ms |")
    print("|---|---|---|---|---|---|---|")
    for method in ("naive", "agent"):
        rows = results[method]
        both = [r["both"] for r in rows]
        print(f"| {method} | {ms(statistics.median(both))} | {ms(max(both))} | "
              f"{sum(1 for b in both if b > 0)} of {len(rows)} | "
              f"{ms(statistics.median(r['out'][0] for r in rows))} | "
              f"{ms(statistics.median(r['out'][1] for r in rows))} | "
              f"{ms(statistics.median(r['live'] for r in rows))} |")
    print()
    print("The agent's price is the standby's hold: it waits `delay_ms` (2 s) for the primary, then for "
          "the pair to be normal, so both edits are live later than with the naive reloads.")


if __name__ == "__main__":
    main()
