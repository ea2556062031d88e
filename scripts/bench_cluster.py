#!/usr/bin/env python3
"""Cluster benchmark: HMS-SYS agents beside HashiCorp Serf, same machine, same run.

For each system and each cluster size N it starts N agents on the loopback of a
private network namespace (so the UDP counters of /proc/net/snmp count only
the agents), then measures:

  converge_s    from the first launch until every agent has seen N members
  detect_med_s  kill -9 of one agent until each other agent declares it
  detect_max_s  failed (dead): median and max over the observers
  false_deaths  failure events about any other agent during the run
  vis_med_s     registration to visible everywhere, after the steady window:
  vis_max_s     agent 1 registers a service
  vis_seen      (HMS-SYS: `hmsctl register svcbench`, watched on every other
                agent by `hmsctl watch svcbench --json`; Serf: `serf tags -set
                svcbench=1`, seen as `EventMemberUpdate: n1` in the other
                agents' logs); median and max of (first sight - t0) over the
                other agents (max only when all saw it) and how many saw it
  rss_mib       resident memory per agent (median), at the end of the window
                after the registration
  pss_mib       proportional set size per agent: shared library pages divided
                among the processes that map them (median)
  cpu_pct       CPU per agent over a steady window, --settle seconds after
                convergence with nothing happening (percent of one core)
  udp_pps       UDP datagrams sent per agent per second over that window
  udp_pps_reg   the same over a window of the same length right after the
                registration (what one change costs, with its follow-ups)

Event times come from each agent's own log lines, stamped on arrival by
`ts` (moreutils) so both systems are timed the same way. Serf runs its LAN
profile; HMS-SYS runs the profile given (default lan), with certificates and
sealed packets as always.

Usage: bench_cluster.py --bin BUILD_DIR [--sizes 16,64,128] [--systems hms,serf]
                        [--profile lan] [--window 20] [--serf-encrypt]
Prints a markdown table and writes JSON results with --json FILE.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def udp_out():
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    hdr, val = lines[0], lines[1]
    return int(val[hdr.index("OutDatagrams")])


def proc_stat(pid):
    """(utime+stime in clock ticks, rss KiB, pss KiB) of pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        ticks = int(parts[11]) + int(parts[12])
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss = next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        return ticks, rss, pss
    except (OSError, StopIteration, IndexError, ValueError):
        return None


class Cluster:
    """N agents of one system, each with its log piped through `ts`."""

    def __init__(self, system, n, work, args):
        self.system, self.n, self.work, self.args = system, n, work, args
        self.procs = {}  # i -> (agent Popen, ts Popen)
        self.logs = {}
        self.launch_t = None

    # -- per-system command lines -------------------------------------------------
    def name(self, i):
        return f"n{i}"

    def socket(self, i):
        return os.path.join(self.work, f"s{i}")

    def cmd(self, i):
        a = self.args
        if self.system == "serf":
            c = [
                "serf", "agent", f"-node={self.name(i)}", f"-bind=127.0.2.{i}:7946",
                f"-rpc-addr=127.0.2.{i}:7373", "-profile=lan", "-log-level=info",
            ]
            if a.serf_key:
                c.append(f"-encrypt={a.serf_key}")
            if i > 1:
                c.append("-join=127.0.2.1:7946")
            return c
        d = os.path.join(self.work, f"d{i}")
        pki = os.path.join(self.work, "pki")
        c = [
            os.path.join(a.bin, "hms-agent"), "--node", self.name(i),
            "--bind", f"127.0.1.{i}:7950", "--data-dir", d,
            "--socket", self.socket(i), "--profile", a.profile,
            "--ca", os.path.join(pki, "ca.pub"), "--cert", os.path.join(pki, f"{self.name(i)}.cert"),
            "--node-key", os.path.join(pki, f"{self.name(i)}.key"),
        ]
        if i > 1:
            c += ["--join", "127.0.1.1:7950"]
        return c

    # Log patterns: (kind, member name) per line, or None.
    SERF_RE = re.compile(r"EventMember(Join|Failed|Leave|Update): (\S+)")
    HMS_RE = re.compile(r"member '?([A-Za-z0-9_.-]+)'? (?:is now |is |now |-> ?)?(alive|joined|dead|failed|left|suspect)")

    def parse(self, line):
        if self.system == "serf":
            m = self.SERF_RE.search(line)
            if not m:
                return None
            kind = {"Join": "join", "Failed": "dead", "Leave": "left",
                    "Update": "update"}[m.group(1)]
            return kind, m.group(2)
        m = self.HMS_RE.search(line)
        if not m:
            return None
        kind = {"alive": "join", "joined": "join", "dead": "dead", "failed": "dead",
                "left": "left", "suspect": "suspect"}[m.group(2)]
        return kind, m.group(1)

    # -- lifecycle ----------------------------------------------------------------
    def start(self):
        if self.system == "hms":
            names = ",".join(self.name(i) for i in range(1, self.n + 1))
            subprocess.run([os.path.join(self.args.bin, "hmsctl"), "ca", "bootstrap", "--names", names,
                            "--out", os.path.join(self.work, "pki")], check=True,
                           stdout=subprocess.DEVNULL)
        self.launch_t = time.time()
        for i in range(1, self.n + 1):
            log = os.path.join(self.work, f"log{i}")
            self.logs[i] = log
            out = open(log, "w")
            agent = subprocess.Popen(self.cmd(i), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
            stamp = subprocess.Popen(["ts", "%.s"], stdin=agent.stdout, stdout=out)
            agent.stdout.close()
            out.close()
            self.procs[i] = (agent, stamp)
            if i == 1:
                time.sleep(0.5)  # the seed listens before others join

    def events(self, i):
        """[(t, kind, member)] from agent i's log so far."""
        ev = []
        try:
            with open(self.logs[i], errors="replace") as f:
                for line in f:
                    t, _, rest = line.partition(" ")
                    p = self.parse(rest)
                    if p:
                        try:
                            ev.append((float(t), p[0], p[1]))
                        except ValueError:
                            pass
        except OSError:
            pass
        return ev

    def kill(self, i):
        agent, _ = self.procs[i]
        agent.send_signal(signal.SIGKILL)
        agent.wait()

    def stop(self):
        for agent, stamp in self.procs.values():
            if agent.poll() is None:
                agent.send_signal(signal.SIGKILL)
        for agent, stamp in self.procs.values():
            agent.wait()
            try:
                stamp.wait(timeout=5)
            except subprocess.TimeoutExpired:
                stamp.kill()
                stamp.wait()


def converged_at(cl, deadline):
    """Time when every agent had seen all N members joined (None if not by deadline)."""
    names = {cl.name(i) for i in range(1, cl.n + 1)}
    while time.time() < deadline:
        times = []
        for i in range(1, cl.n + 1):
            seen = {}
            for t, kind, m in cl.events(i):
                if kind == "join" and m not in seen:
                    seen[m] = t
            seen.setdefault(cl.name(i), cl.launch_t)  # an agent knows itself
            if not names <= set(seen):
                break
            times.append(max(seen[m] for m in names))
        else:
            # HMS logs each member once; serf logs its own join too. Either way the
            # last distinct join is the moment this agent knew everyone.
            return max(times)
        time.sleep(0.5)
    return None


def stamped_lines(path):
    """[(t, text)] of a file written through `ts %.s`."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                t, _, rest = line.partition(" ")
                try:
                    out.append((float(t), rest.strip()))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def visibility(cl, args):
    """{observer i: seconds from registration on agent 1 to first sight on i}, and the
    number of observers. HMS-SYS: a catalog registration seen through a service watch
    on each other agent; Serf: a tag change seen as a member update in each log."""
    n = cl.n
    obs = range(2, n + 1)
    vis = {}
    if cl.system == "serf":
        t0 = time.time()
        if subprocess.run(["serf", "tags", "-set", "svcbench=1", "-rpc-addr=127.0.2.1:7373"],
                          stdout=subprocess.DEVNULL).returncode != 0:
            return vis
        deadline = t0 + args.vis_timeout
        while time.time() < deadline and len(vis) < n - 1:
            time.sleep(0.25)
            for i in obs:
                if i in vis:
                    continue
                for t, kind, m in cl.events(i):
                    if kind == "update" and m == cl.name(1) and t >= t0:
                        vis[i] = t - t0
                        break
        return vis
    ctl = os.path.join(cl.args.bin, "hmsctl")
    watches, files = {}, {}
    try:
        for i in obs:
            files[i] = os.path.join(cl.work, f"watch{i}")
            out = open(files[i], "w")
            w = subprocess.Popen([ctl, "--socket", cl.socket(i), "watch", "svcbench", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
            st = subprocess.Popen(["ts", "%.s"], stdin=w.stdout, stdout=out)
            w.stdout.close()
            out.close()
            watches[i] = (w, st)
        # every watch has printed its first (empty) list, or 10 s passed; at least 1 s
        t_w = time.time()
        while time.time() < t_w + 10 and not all(stamped_lines(files[i]) for i in obs):
            time.sleep(0.1)
        time.sleep(max(0.0, t_w + 1 - time.time()))
        t0 = time.time()
        if subprocess.run([ctl, "--socket", cl.socket(1), "register", "svcbench", "--port", "9999"],
                          stdout=subprocess.DEVNULL).returncode != 0:
            return vis
        deadline = t0 + args.vis_timeout
        while time.time() < deadline and len(vis) < n - 1:
            time.sleep(0.25)
            for i in obs:
                if i in vis:
                    continue
                for t, text in stamped_lines(files[i]):
                    try:
                        inst = json.loads(text)
                    except ValueError:
                        continue
                    if isinstance(inst, list) and inst and t >= t0:
                        vis[i] = t - t0
                        break
    finally:
        for w, st in watches.values():
            if w.poll() is None:
                w.send_signal(signal.SIGKILL)
        for w, st in watches.values():
            w.wait()
            try:
                st.wait(timeout=5)
            except subprocess.TimeoutExpired:
                st.kill()
                st.wait()
    return vis


def measure(system, n, args):
    work = tempfile.mkdtemp(prefix=f"hmsbench-{system}-{n}-")
    cl = Cluster(system, n, work, args)
    res = {"system": system, "n": n}
    try:
        cl.start()
        t_conv = converged_at(cl, time.time() + args.converge_timeout)
        res["converge_s"] = round(t_conv - cl.launch_t, 2) if t_conv else None
        if t_conv is None:
            res["error"] = "did not converge"
            return res
        time.sleep(args.settle)
        pids = [a.pid for a, _ in cl.procs.values()]
        hz = os.sysconf("SC_CLK_TCK")

        def window():
            """CPU (median % of a core), UDP datagrams per agent per second."""
            s0 = {p: proc_stat(p) for p in pids}
            u0, w0 = udp_out(), time.time()
            time.sleep(args.window)
            s1 = {p: proc_stat(p) for p in pids}
            u1, w1 = udp_out(), time.time()
            cpu = [(s1[p][0] - s0[p][0]) / hz / (w1 - w0) * 100 for p in pids if s0[p] and s1[p]]
            return s1, round(statistics.median(cpu), 2), round((u1 - u0) / (w1 - w0) / n, 2)

        # steady window, the cluster idle: CPU and UDP datagrams
        _, res["cpu_pct"], res["udp_pps"] = window()
        # registration to visible everywhere
        vis = visibility(cl, args)
        if vis:
            res["vis_med_s"] = round(statistics.median(vis.values()), 3)
            res["vis_max_s"] = round(max(vis.values()), 3) if len(vis) == n - 1 else None
        res["vis_seen"] = f"{len(vis)}/{n - 1}"
        # the window after the registration (what it costs), then memory
        s1, _, res["udp_pps_reg"] = window()
        res["rss_mib"] = round(statistics.median([s1[p][1] / 1024 for p in pids if s1[p]]), 2)
        res["pss_mib"] = round(statistics.median([s1[p][2] / 1024 for p in pids if s1[p]]), 2)
        # failure detection
        victim = n
        vname = cl.name(victim)
        t_kill = time.time()
        cl.kill(victim)
        deadline = t_kill + args.detect_timeout
        det = {}
        while time.time() < deadline and len(det) < n - 1:
            time.sleep(0.25)
            for i in range(1, n):
                if i in det:
                    continue
                for t, kind, m in cl.events(i):
                    if m == vname and kind == "dead" and t >= t_kill:
                        det[i] = t - t_kill
                        break
        if det:
            res["detect_med_s"] = round(statistics.median(det.values()), 2)
            res["detect_max_s"] = round(max(det.values()), 2) if len(det) == n - 1 else None
        res["detected_by"] = f"{len(det)}/{n - 1}"
        false = 0
        for i in range(1, n):
            false += sum(1 for _, kind, m in cl.events(i) if kind == "dead" and m != vname)
        res["false_deaths"] = false
        return res
    finally:
        cl.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            res["work"] = work


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="16,64,128")
    ap.add_argument("--systems", default="hms,serf")
    ap.add_argument("--profile", default="lan")
    ap.add_argument("--window", type=float, default=20)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--converge-timeout", type=float, default=120)
    ap.add_argument("--detect-timeout", type=float, default=60)
    ap.add_argument("--vis-timeout", type=float, default=30)
    ap.add_argument("--serf-encrypt", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    args.serf_key = base64.b64encode(os.urandom(32)).decode() if args.serf_encrypt else None
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        for system in args.systems.split(","):
            r = measure(system, n, args)
            print(json.dumps(r), file=sys.stderr, flush=True)
            results.append(r)
    cols = ["system", "n", "converge_s", "detect_med_s", "detect_max_s", "detected_by",
            "false_deaths", "vis_med_s", "vis_max_s", "vis_seen", "rss_mib", "pss_mib", "cpu_pct", "udp_pps", "udp_pps_reg"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r.get(c, "-")) for c in cols) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
