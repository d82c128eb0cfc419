#!/usr/bin/env python3
"""Turns bench/edit_to_live.py results into the BENCHMARKS.md sections (stdlib only)."""

import argparse
import json
import os
import platform
import subprocess
import time


def kea_version():
    try:
        return subprocess.run(["kea-dhcp4", "-V"], capture_output=True, text=True).stdout.split()[0]
    except (OSError, IndexError):
        return "?"


def row(name, s, floor=None, extra=""):
    ratio = "" if not floor else "%.2f" % (s["p50"] / floor["p50"])
    return "| %s | %.1f | %.1f | %.1f | %d | %s | %s |" % (name, s["p50"], s["p95"], s["p99"], s["n"], ratio, extra)


def latency_table(r, title):
    out = ["### " + title, "", "Config: %.1f KiB." % (r["config_bytes"] / 1024), "",
           "| method | p50 ms | p95 ms | p99 ms | n | p50 / floor | |", "|---|---|---|---|---|---|---|"]
    floor = r["floor"]
    out.append(row("floor: `config-reload` sent directly (round trip)", floor, floor))
    out.append(row("`kea-dhcp4 -t` of the file (the agent's validation)", r["validate"], floor))
    if "naive" in r:
        out.append(row("naive `inotifywait -m` + socat loop, edit to live", r["naive"], floor,
                       "reloaded %d broken file(s) it was given" % r.get("naive_invalid_reloads", 0)))
    out.append(row("**kea-sync-agent**, edit to live", r["agent"], floor,
                   "reloaded %d broken file(s) it was given" % r.get("agent_invalid_reloads", 0)))
    if "agent_to_central" in r:
        out.append(row("kea-sync-agent, edit to event stored by kea-sync-central (SQLite)", r["agent_to_central"], floor))
    out.append("")
    a, f, v = r["agent"]["p50"], floor["p50"], r["validate"]["p50"]
    line = "Agent p50 %.1f ms against floor + validation + settle_ms (50) + 10 ms = %.1f ms" % (a, f + v + 60)
    if "naive" in r:
        line += ("; agent / naive loop at p50: %.2f (the difference is validation and settling: "
                 "the naive loop reloads broken files, the agent never does)" % (a / r["naive"]["p50"]))
    out.append(line + ".")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--command", required=True)
    ap.add_argument("--small", required=True)
    ap.add_argument("--large")
    args = ap.parse_args()
    small = json.load(open(args.small))
    out = ["# Benchmarks", "",
           "Produced by `%s` on %s: %d cores, %s, Kea %s (Debian). Every ratio compares figures measured "
           "in the same run against the same Kea; absolute times vary with the machine's load."
           % (args.command, time.strftime("%Y-%m-%d"), os.cpu_count(), platform.machine(), kea_version()), "",
           "## Edit to live (P2, P9)", ""]
    out += latency_table(small, "Small config (bench/edit_to_live.py, %d edits by rename)" % small["agent"]["n"])
    if args.large:
        large = json.load(open(args.large))
        out += [""] + latency_table(large, "30 MB config: 20,000 subnets, 200,000 reservations (%d edits: each reload takes seconds)" % large["agent"]["n"])
        if "agent_stats_after" in large:
            st = large["agent_stats_after"]
            out += ["", "Agent after the large run: peak RSS %.1f MiB, CPU %.1f s in total." % (st["hwm_kb"] / 1024, st["cpu_s"])]
    if "agent_to_central" in small:
        c = small["agent_to_central"]
        out += ["", "## Edit to central (P3, P9)", "",
                "| | p50 | p95 | p99 |", "|---|---|---|---|",
                "| kea-sync-agent -> kea-sync-central (SQLite) | %.0f ms | %.0f ms | %.0f ms |" % (c["p50"], c["p95"], c["p99"]),
                "| reference: Stork's pull interval | 30 s | | |",
                "| reference: Micetro's DHCPSyncInterval default | 900 s | | |", "",
                "Edit to stored minus edit to live at p50: %.1f ms (target: at most 50 ms)."
                % (c["p50"] - small["agent"]["p50"])]
    if "agent_idle" in small:
        a, n = small["agent_idle"], small.get("naive_idle")
        out += ["", "## Idle cost (P2, P9)", "", "| | CPU s | wake-ups (context switches) | RSS MiB |", "|---|---|---|---|",
                "| kea-sync-agent | %.2f | %d | %.1f |" % (a["cpu_s"], a["wakeups"], a["rss_kb"] / 1024)]
        if n:
            out.append("| inotifywait + socat loop (whole pipeline) | %.2f | %d | %.1f |" % (n["cpu_s"], n["wakeups"], n["rss_kb"] / 1024))
    if "storm" in small:
        st = small["storm"]
        out += ["", "## Edit storm (P9)", "",
                "100 saves per second for 10 s (%d saves, every 10th invalid): Kea reloaded %d time(s), "
                "%d failed reload(s) (invalid content reaching Kea), final content live: %s."
                % (st["saves"], st["reloads"], st["failed_reloads"], "yes" if st["final_live"] else "NO")]
    print("\n".join(out))


if __name__ == "__main__":
    main()
