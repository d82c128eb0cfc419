#!/usr/bin/env python3
"""Turns bench/edit_to_live.py results into the BENCHMARKS.md sections (stdlib only).

Every ratio printed here divides two figures measured in the same run against the same
Kea; targets are the ones the issues set (P17, which supersedes P2, P3 and P9's budgets).

    bench/report.py --command CMD --small small.json [--large large.json] [--root-run FILE]...

--root-run: a run of bench/edit_to_live.py --root (Kea 2.6 or 3.0 in a debootstrap root),
small or large config (told apart by its subnet count)."""

import argparse
import json
import os
import platform
import subprocess
import time

SETTLE_MS = 50  # bench/edit_to_live.py's default --settle-ms, the agent's default settle_ms
LARGE_SUBNETS = 1000  # a run with more subnets than this is a large-config run
STORK_POLL_S = 30
MICETRO_POLL_S = 900


def kea_version():
    try:
        return subprocess.run(["kea-dhcp4", "-V"], capture_output=True, text=True).stdout.split()[0]
    except (OSError, IndexError):
        return "?"


def machine():
    """Cores, architecture, memory, OS and kernel, load when the report was written."""
    os_name = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem_gib = 0.0
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return "%d cores (%s), %.0f GiB RAM, %s, Linux %s, 5-minute load average at the end %.2f" % (
        os.cpu_count(), platform.machine(), mem_gib, os_name, platform.release(), os.getloadavg()[1])


def verdict(ok):
    return "met" if ok else "**missed**"


def mib(kb):
    return kb / 1024


def row(name, s, floor, naive=None, extra=""):
    vs_naive = "%.2f" % (s["p50"] / naive["p50"]) if naive else ""
    return "| %s | %.1f | %.1f | %.1f | %d | %.2f | %s | %s |" % (
        name, s["p50"], s["p95"], s["p99"], s["n"], s["p50"] / floor["p50"], vs_naive, extra)


def latency_table(r, title):
    floor, naive = r["floor"], r.get("naive")
    out = ["### " + title, "",
           "Config file %.1f KiB; Kea's config-get reply %.1f KiB." % (r["config_bytes"] / 1024, r.get("config_get_bytes", 0) / 1024),
           "",
           "| method | p50 ms | p95 ms | p99 ms | n | p50 / floor | p50 / naive | |",
           "|---|---|---|---|---|---|---|---|"]
    out.append(row("(a) floor: `config-reload` sent directly (round trip)", floor, floor))
    out.append(row("`kea-dhcp4 -t` of the file (the agent's validation)", r["validate"], floor))
    if "config_get" in r:
        out.append(row("Kea's own `config-get` (round trip, whole reply; fresh Kea)", r["config_get"], floor))
    if "config_get_after_reload" in r:
        out.append(row("Kea's own `config-get` right after each floor reload", r["config_get_after_reload"], floor))
    if naive:
        out.append(row("(b) naive `inotifywait -m` + socat loop, edit to live", naive, floor, naive,
                       "reloaded %d broken file(s) of 1 given" % r.get("naive_invalid_reloads", 0)))
    out.append(row("(c) **kea-sync-agent**, edit to live", r["agent"], floor, naive,
                   "reloaded %d broken file(s) of 1 given" % r.get("agent_invalid_reloads", 0)))
    if "agent_to_central" in r:
        out.append(row("kea-sync-agent, edit to event stored by kea-sync-central (SQLite)", r["agent_to_central"], floor, naive))
    out.append("")
    if naive:
        out.append("What validation costs: agent minus naive loop at p50 = %.1f ms, of which `kea-dhcp4 -t` "
                   "is %.1f ms. Every edit here is a rename onto the path, which ends the agent's wait (as "
                   "a writer's close does): the settle window (%d ms) applies only to writers that pause with "
                   "the file open. What it buys: the naive loop handed Kea the broken "
                   "file: %d failed reload(s), with %d DHCP4_CONFIG_UNRECOVERABLE_ERROR%s; the agent kept it "
                   "away (%d failed reloads)."
                   % (r["agent"]["p50"] - naive["p50"], r["validate"]["p50"], SETTLE_MS,
                      r.get("naive_invalid_reloads", 0), r.get("naive_unrecoverable", 0),
                      " (Kea is then left without a working config until the next good reload)"
                      if r.get("naive_unrecoverable") else "",
                      r.get("agent_invalid_reloads", 0)))
    return out


def kea_label(r):
    """"Kea 3.0.4 (sid-kea-v3 root)" for a root run, "Kea 2.2.0 (host)" otherwise."""
    where = "%s root" % os.path.basename(r["root"]) if r.get("root") else "host"
    return "Kea %s (%s)" % (r.get("kea_version", "?"), where)


def small_targets(r, where=""):
    """P17 on a small config: the agent adds nothing beyond Kea's own validation (+15 ms)."""
    a, f, v = r["agent"]["p50"], r["floor"]["p50"], r["validate"]["p50"]
    out = [("Small config%s, agent edit to live p50 - floor p50 <= `kea-dhcp4 -t` p50 + 15 ms (P17)" % where,
            "%.1f ms vs %.1f ms" % (a - f, v + 15), a - f <= v + 15,
            "agent %.1f, floor %.1f, `-t` %.1f ms p50" % (a, f, v))]
    if "agent_idle" in r:
        w = r["agent_idle"]["wakeups"]
        out.append(("Idle%s, agent wake-ups beyond the periodic check = 0 (P17)" % where, "%d in %d s" % (w, r.get("idle_seconds", 0)),
                    w == 0, "the bench's agent.toml moves the periodic check (check_interval_s) to 3600 s"))
    return out


def large_targets(r, where=""):
    """P17 on the large config: reload, push and memory next to Kea's own figures."""
    a, f = r["agent"]["p50"], r["floor"]["p50"]
    v = r["validate"]["p50"]
    out = [("Large config%s, agent edit to live p50 <= 1.9 x floor p50 (P17)" % where, "%.2f x" % (a / f), a / f <= 1.9,
            "agent %.0f ms, floor %.0f ms; `kea-dhcp4 -t` then the floor, back to back, take %.2f x the floor, "
            "so the agent is %.2f x that" % (a, f, (v + f) / f, a / (v + f)))]
    if "agent_to_central" in r and "config_get_after_reload" in r:
        c, g = r["agent_to_central"]["p50"], r["config_get_after_reload"]["p50"]
        fresh = r.get("config_get", {}).get("p50")
        note = "config-get %.0f ms p50 right after a direct reload (the one the agent makes)" % g
        if fresh:
            note += "; against a fresh Kea's %.0f ms the bound would be %.0f ms" % (fresh, a + 1.3 * fresh)
        out.append(("Large config%s, edit to central p50 <= edit to live p50 + 1.3 x Kea's config-get p50 (P17)" % where,
                    "%.0f ms vs %.0f ms" % (c, a + 1.3 * g), c <= a + 1.3 * g, note))
    st = r.get("agent_stats_after")
    if st and r.get("config_get_bytes"):
        peak = st["hwm_kb"] * 1024 / r["config_get_bytes"]
        out.append(("Large config%s, agent peak RSS <= 2.5 x Kea's config-get reply (P17, was P3)" % where, "%.2f x" % peak,
                    peak <= 2.5, "peak %.0f MiB, reply %.0f MiB" % (mib(st["hwm_kb"]), r["config_get_bytes"] / 1048576)))
    return out


STAGES = [
    ("seen_read_first_question", "edit seen, files read and expanded, first question to Kea (status-get)"),
    ("validate_and_keep_last_good", "`kea-dhcp4 -t` (beside it, only when Kea reconfigured since the agent last saw it: Kea's config fetched to roll back to)"),
    ("kea_reload", "Kea's `config-reload` (its success logged)"),
    ("verify_serving", "verification: status-get, Kea's DHCP sockets"),
    ("fetch_config_and_queue", "config-get of the applied config, written to the outbox (the last good copy is written after, beside the push)"),
    ("gzip_post_store", "gzip, POST, the central parses and stores"),
]


def stages_table(r):
    """Where an agent edit's time goes, stage by stage (p50 of each), from Kea's and the
    agent's logs of the same run."""
    st = r.get("agent_stages")
    if not st or not st.get("edits"):
        return []
    out = ["| stage (from Kea's and the agent's logs) | p50 ms |", "|---|---|"]
    for key, name in STAGES:
        if key in st:
            out.append("| %s | %.0f |" % (name, st[key]))
    out += ["", "Over %d edits; %d of them had Kea fetch its config before the reload (config-get, "
            "beside `-t`). Each stage's p50 is taken alone, so they need not add up to the total's."
            % (st["edits"], st.get("config_get_before_reload", 0))]
    out[-1] += (" Before a reload the agent asks Kea only for the stamp on its declined-addresses statistic"
                " (statistic-get), which every reconfiguration stamps anew: while it and Kea's pid are what"
                " they were when the agent last fetched Kea's config, and no hook or config backend changes"
                " the config in place, Kea runs that config. A config-hash-get is no cheaper than a config-get"
                " for Kea (it serializes the whole config: seconds here), and 2.2 has only config-get.")
    after = r.get("config_get_after_reload")
    if after and "agent_to_central" in r:
        spent = r["agent_to_central"]["p50"] - r["agent"]["p50"]
        out += ["", "Edit to central p50 minus edit to live p50: %.0f ms, of which Kea's own config-get right after "
                "a reload takes %.0f ms p50 (floor series): the agent and the central add %.0f ms (%.0f%% of that "
                "config-get)." % (spent, after["p50"], spent - after["p50"], 100 * (spent - after["p50"]) / after["p50"])]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--command", required=True)
    ap.add_argument("--small", required=True)
    ap.add_argument("--large")
    ap.add_argument("--root-run", action="append", default=[], help="a bench/edit_to_live.py --root run (JSON)")
    args = ap.parse_args()
    small = json.load(open(args.small))
    large = json.load(open(args.large)) if args.large else None
    roots = [json.load(open(path)) for path in args.root_run]

    targets = small_targets(small)
    if large:
        targets += large_targets(large)
    for r in roots:
        where = " on " + kea_label(r)
        targets += large_targets(r, where) if r.get("subnets", 0) > LARGE_SUBNETS else small_targets(r, where)
    if "agent_idle" in small:
        rss_mb = small["agent_idle"]["rss_kb"] * 1024 / 1e6
        targets.append(("Idle RSS < 10 MB", "%.1f MB" % rss_mb, rss_mb < 10, ""))
    invalid = sum(r.get("agent_invalid_reloads", 0) + r.get("storm", {}).get("failed_reloads", 0)
                  for r in [small, large or {}] + roots)
    targets.append(("Invalid reloads by the agent (edit series and storm, every run) = 0", "%d" % invalid, invalid == 0, ""))

    out = ["# Benchmarks", "",
           "Produced by `%s` (run as root; it installs what it needs) on %s. Machine: %s; Kea %s (Debian). "
           "Every ratio compares figures measured in the same run against the same Kea; absolute "
           "times vary with the machine's load."
           % (args.command.strip(), time.strftime("%Y-%m-%d"), machine(), small.get("kea_version") or kea_version()), "",
           "An edit is a rename of a new kea-dhcp4.conf over the old one (what editors and Ansible do); "
           "it is live when Kea logs DHCP4_DYNAMIC_RECONFIGURATION_SUCCESS (Kea and the bench run with "
           "TZ=UTC; its log stamps are read as UTC). Each method gets the same edits, one after the other, "
           "and Kea is restarted on the current file before each method (and before Kea's own config-get "
           "is timed), so no method meets a Kea grown by the previous methods' reloads.", "",
           "## Targets", "", "| target | measured | | note |", "|---|---|---|---|"]
    out += ["| %s | %s | %s | %s |" % (name, got, verdict(ok), note) for name, got, ok, note in targets]

    out += ["", "## 1. Edit to live", ""]
    out += latency_table(small, "Small config (%d edits)" % small["agent"]["n"])
    if large:
        out += [""] + latency_table(large, "Large config: 20,000 subnets, 200,000 reservations (%d edits)" % large["agent"]["n"])
        out += ["", "The content of P1's 30 MB config (which adds comments and indentation), written as "
                "compact JSON: %.1f MiB on disk, %.1f MiB as Kea's config-get returns it."
                % (large["config_bytes"] / 1048576, large.get("config_get_bytes", 0) / 1048576),
                "", "Kea's memory grows with each reload of this config (section 5), its reload time "
                "perhaps with it: Kea is restarted before each method (floor, validation, naive loop, agent), "
                "so each starts from a Kea that has loaded the config once."]

    out += ["", "## 2. Edit to central", "",
            "From the edit to the event stored by kea-sync-central (SQLite), next to the polling "
            "intervals of centrals that pull instead (their mean delay is half the interval, their worst the whole).", "",
            "| | p50 | p95 | p99 | Stork's 30 s poll / p50 | Micetro's 900 s poll / p50 |", "|---|---|---|---|---|---|"]
    for name, r in (("small config", small), ("large config", large)):
        if r and "agent_to_central" in r:
            c = r["agent_to_central"]
            out.append("| kea-sync-agent -> kea-sync-central, %s | %.0f ms | %.0f ms | %.0f ms | %.0f | %.0f |" % (
                name, c["p50"], c["p95"], c["p99"], STORK_POLL_S * 1000 / c["p50"], MICETRO_POLL_S * 1000 / c["p50"]))
    out += ["| reference: Stork's pull interval | 30 s | | | | |",
            "| reference: Micetro's DHCPSyncInterval default | 900 s | | | | |"]
    for name, r in (("Small config", small), ("Large config", large)):
        if r and "agent_to_central" in r:
            line = "%s: edit to stored minus edit to live at p50 = %.1f ms" % (
                name, r["agent_to_central"]["p50"] - r["agent"]["p50"])
            if "config_get_after_reload" in r:
                line += "; Kea's own config-get takes %.1f ms p50 right after a reload (%d calls)" % (
                    r["config_get_after_reload"]["p50"], r["config_get_after_reload"]["n"])
            if "config_get" in r:
                line += ", %.1f ms on a fresh Kea (%d calls)" % (r["config_get"]["p50"], r["config_get"]["n"])
            out += ["", line + "."]

    if "agent_idle" in small:
        a, n = small["agent_idle"], small.get("naive_idle")
        seconds = small.get("idle_seconds", 60)
        out += ["", "## 3. Idle cost", "",
                "Over %d s with no edits; wake-ups are context switches of every thread "
                "(/proc/PID/task/*/status), counted per thread." % seconds, "",
                "| | CPU s | wake-ups | RSS MiB |", "|---|---|---|---|",
                "| kea-sync-agent | %.2f | %d | %.1f |" % (a["cpu_s"], a["wakeups"], mib(a["rss_kb"]))]
        if n:
            out.append("| inotifywait + socat loop (whole process group) | %.2f | %d | %.1f |" % (n["cpu_s"], n["wakeups"], mib(n["rss_kb"])))
        out += ["", "The agent's periodic check (check_interval_s, default every 60 s: status-get and "
                "statistic-get, a config-hash-get or config-get only when Kea reconfigured) is set to 3600 s in the bench's agent.toml, so the window holds "
                "none of it: every wake-up counted is one beyond the periodic check."]
        if a.get("wakeups_by_thread"):
            out[-1] += " The agent's wake-ups by thread: %s; threads at the start and end of the window: %d, %d." % (
                ", ".join("%s %d" % kv for kv in sorted(a["wakeups_by_thread"].items())), a["threads"][0], a["threads"][1])

    if "storm" in small:
        st = small["storm"]
        out += ["", "## 4. Edit storm", "",
                "100 saves per second for 10 s (%d saves, every 10th one invalid), small config: Kea reloaded %d "
                "time(s) (the naive loop would have tried once per save), %d failed reload(s) (invalid content "
                "reaching Kea), final content live: %s."
                % (st["saves"], st["reloads"], st["failed_reloads"], "yes" if st["final_live"] else "**NO**")]

    if large:
        st, k = large.get("agent_stats_after", {}), large.get("kea_stats", {})
        cpu, kcpu = large.get("agent_cpu_per_apply"), large.get("kea_cpu_per_reload")
        gb = large.get("config_get_bytes", 0)
        out += ["", "## 5. Large config: the agent's cost per apply next to Kea's", "",
                "Same run as the large-config rows above. The agent's CPU per apply runs from the edit "
                "until the central stored the event: reading and expanding the files (when the edit is "
                "seen and again at the check), reading Kea's config-get reply, writing it to the outbox, "
                "gzip and POST. `kea-dhcp4 -t` runs as a child process and is not in it (see the "
                "validation row above). Kea's RSS is taken after the floor's reloads; it grows "
                "with repeated reloads of a large config%s." % (
                    " (%.0f MiB after the first)" % mib(large["kea_rss_after_first_reload_kb"])
                    if "kea_rss_after_first_reload_kb" in large else ""), "",
                "| | p50 | p95 | peak RSS MiB |", "|---|---|---|---|"]
        if cpu:
            out.append("| kea-sync-agent, CPU ms per apply (edit to pushed) | %.0f | %.0f | %.1f |" % (cpu["p50"], cpu["p95"], mib(st.get("hwm_kb", 0))))
        if kcpu:
            out.append("| kea-dhcp4, CPU ms per `config-reload` | %.0f | %.0f | %.1f |" % (kcpu["p50"], kcpu["p95"], mib(k.get("hwm_kb", 0))))
        out.append("| kea-dhcp4, `config-reload` round trip ms (the floor) | %.0f | %.0f | |" % (large["floor"]["p50"], large["floor"]["p95"]))
        if large.get("agent_stages"):
            out += ["", "Where an edit's time goes, %s, same run:" % kea_label(large), ""] + stages_table(large)
        if gb and st:
            out += ["", "Agent peak RSS / config-get reply (%.1f MiB) = %.2f; Kea's peak RSS / agent's = %.1f. "
                    "After the run the agent holds %.1f MiB."
                    % (gb / 1048576, st["hwm_kb"] * 1024 / gb, k.get("hwm_kb", 0) / max(st["hwm_kb"], 1), mib(st["rss_kb"]))]
    if roots:
        out += ["", "## 6. Newer Kea (debootstrap roots)", "",
                "Kea, `kea-dhcp4 -t`, the agent and the central run inside a debootstrap root made by "
                "scripts/kea-roots (chroot; the work dir bind-mounted at its own path, the control socket "
                "in the root's /run/kea and the log in its /var/log/kea, where Kea 2.6.3+/3.0 allow them). "
                "The bench itself and the naive loop (inotifywait + socat, which the root lacks) run on the "
                "host against the same files. The `-t` row includes chroot's exec; the agent runs its own "
                "`kea-dhcp4 -t` inside the root, without it. Kea is restarted before each method here too.", ""]
        for r in roots:
            size = ("20,000 subnets, 200,000 reservations" if r.get("subnets", 0) > LARGE_SUBNETS
                    else "small config")
            out += latency_table(r, "%s: %s (%d edits)" % (kea_label(r), size, r["agent"]["n"]))
            extra = []
            if "agent_to_central" in r:
                extra.append("edit to event stored by the central %.0f ms p50" % r["agent_to_central"]["p50"])
            if "agent_idle" in r:
                a = r["agent_idle"]
                extra.append("idle over %d s: %.2f CPU s, %d wake-ups, %.1f MiB RSS"
                             % (r.get("idle_seconds", 0), a["cpu_s"], a["wakeups"], mib(a["rss_kb"])))
            if "storm" in r:
                st = r["storm"]
                extra.append("storm: %d saves, %d reloads, %d failed, final content live: %s"
                             % (st["saves"], st["reloads"], st["failed_reloads"], "yes" if st["final_live"] else "**NO**"))
            if extra:
                text = "; ".join(extra)
                out += ["", text[0].upper() + text[1:] + "."]
            if r.get("subnets", 0) > LARGE_SUBNETS and r.get("agent_stages"):
                out += ["", "Where an edit's time goes:", ""] + stages_table(r)
            out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
