"""Review 11: graceful leaves of metadata-group members with real `dynamopy serve` processes.

Run with the tree under test first on PYTHONPATH, e.g.
  PYTHONPATH=/work/main python tests/repro/measure_leaves.py a        (after: main)
  PYTHONPATH=/work/wt/base11 python tests/repro/measure_leaves.py a   (before: e87eaf7)
Scenarios: a (3 nodes, leave n3 then, on a fresh cluster, n1), b (4 nodes, leave n3 while n2 is
SIGSTOPped), c (5 nodes, leave n1 then n2), d (3 nodes, metadata_group_size 1, leave the
sole member), mixed (3 nodes; n1, n2 run OLD_TREE, n3 runs this tree; leave n3).
e: sim seed 7 with processes (see scenario_e).
Run from a cwd outside every tree (cd /tmp), with the repository root on PYTHONPATH too (for
``tests.integration``): `python -m dynamopy` puts the cwd first on sys.path, so a run from a
checkout starts that checkout's nodes whatever PYTHONPATH says. Every node is stopped by PID
at the end (LocalCluster.stop); every wait is bounded.
"""

import json
import os
import signal
import sys
import tempfile
import time

from tests.integration.cluster import LocalCluster

OUT = {}


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def settled(c, via, ids):
    info = c.cluster_info(via)
    ms = {m["id"]: m for m in info["members"]}
    return info["change"] is None and sorted(ms) == sorted(ids) and all(
        m["state"] == "normal" for m in ms.values())


def group(c, via):
    try:
        return c.cluster_info(via)["metadata_group"]
    except Exception as e:  # noqa
        return repr(e)[:60]


def writes_go_on(c, via, tag, count=20):
    t = time.monotonic()
    with c.client(via, timeout_s=10) as cl:
        for i in range(count):
            cl.put(f"{tag}-{i}", f"v{i}".encode())
        for i in range(count):
            assert cl.get(f"{tag}-{i}").value == f"v{i}".encode()
    return round(time.monotonic() - t, 2)


def timed_leave(c, via, leaver, rest, budget_s=60.0, poll=None):
    """Leave ``leaver`` through node ``via``; seconds until settled on ``rest`` (None: not
    within budget_s), with the group trace."""
    t0 = time.monotonic()
    with c.client(via, timeout_s=10) as cl:
        cl.leave(leaver)
    trace, last = [], None
    while time.monotonic() - t0 < budget_s:
        g = group(c, via)
        if g != last:
            trace.append((round(time.monotonic() - t0, 2), g))
            last = g
        if poll:
            poll(time.monotonic() - t0)
        try:
            if settled(c, via, rest):
                return round(time.monotonic() - t0, 2), trace
        except Exception:
            pass
        time.sleep(0.1)
    return None, trace


def start(root, nodes, extra_nodes=0, n=2, r=1, w=2, env_of=None):
    c = LocalCluster(root, nodes, n=n, r=r, w=w)
    env_of = env_of or (lambda i: None)
    try:
        for i in range(nodes):
            c.start_node(i, env=env_of(i))
        c.wait_ready(range(nodes), 60)
        for _ in range(extra_nodes):
            i = max(c.procs) + 1
            c.start_node(i, env=env_of(i))
        ids = [c.node_id(i) for i in range(nodes + extra_nodes)]
        c.wait_until(lambda: settled(c, 0, ids), 60, "all joined")
    except BaseException:
        c.stop()
        raise
    return c


def after_leave(c, via, name, tag="post"):
    """Writes go on through ``via`` after a leave; then the group it settled on, as
    ``OUT[name + "_writes_after_s"]`` and ``OUT[name + "_group_after"]``."""
    OUT[f"{name}_writes_after_s"] = writes_go_on(c, via, tag)
    time.sleep(2)
    OUT[f"{name}_group_after"] = group(c, via)
    log(f"{name}: group after", OUT[f"{name}_group_after"])


def scenario_a(root):
    for leaver_i in (2, 0):
        c = start(f"{root}/a{leaver_i}", 3)
        try:
            leaver = c.node_id(leaver_i)
            via = 1
            lead = c.node_view(via)["metadata"].get("leader")
            rest = [c.node_id(i) for i in range(3) if i != leaver_i]
            writes_go_on(c, via, "pre")
            t, trace = timed_leave(c, via, leaver, rest)
            log(f"a: leave {leaver} (leader {lead}): {t}s, group trace {trace}")
            OUT[f"a_leave_{leaver}"] = t
            c.kill(leaver_i, signal.SIGTERM)
            after_leave(c, via, f"a_{leaver}", f"post{leaver_i}")
        finally:
            c.stop()


def scenario_b(root, stop_sig=signal.SIGSTOP):
    c = start(f"{root}/b", 3, extra_nodes=1)
    try:
        view = c.node_view(0)["metadata"]
        log("b: group", group(c, 0), "leader", view.get("leader"))
        writes_go_on(c, 0, "pre")
        c.pause(1)  # n2
        time.sleep(3)
        resumed = []

        def poll(t):
            if t > 12 and not resumed:
                log("b: SIGCONT n2 at", round(t, 2))
                c.resume(1)
                resumed.append(round(t, 2))

        try:
            t, trace = timed_leave(c, 0, "n3", ["n1", "n2", "n4"], budget_s=60, poll=poll)
        finally:
            if not resumed:
                c.resume(1)
        log(f"b: leave n3 with n2 stopped 3s before and resumed at {resumed}: {t}s, trace {trace}")
        OUT["b_leave_n3"] = t
        OUT["b_after_resume"] = None if t is None else round(t - resumed[0], 2) if resumed else t
        c.kill(2, signal.SIGTERM)
        after_leave(c, 0, "b")
    finally:
        c.stop()


def scenario_c(root):
    c = start(f"{root}/c", 3, extra_nodes=2)
    try:
        log("c: group", group(c, 3))
        writes_go_on(c, 3, "pre")
        t1, tr1 = timed_leave(c, 3, "n1", ["n2", "n3", "n4", "n5"])
        log(f"c: leave n1 {t1}s trace {tr1}")
        c.kill(0, signal.SIGTERM)
        writes_go_on(c, 3, "mid")
        t2, tr2 = timed_leave(c, 3, "n2", ["n3", "n4", "n5"])
        log(f"c: leave n2 {t2}s trace {tr2}")
        c.kill(1, signal.SIGTERM)
        OUT.update(c_leave_n1=t1, c_leave_n2=t2)
        after_leave(c, 3, "c")
    finally:
        c.stop()


def scenario_d(root):
    c = start(f"{root}/d", 3)
    try:
        with c.client(0, timeout_s=10) as cl:
            cl.set_config(metadata_group_size=1)
        c.wait_until(lambda: len(group(c, 0)) == 1, 30, "group of 1")
        g = group(c, 0)[0]
        gi = int(g[1:]) - 1
        via = (gi + 1) % 3
        log("d: group", g)
        t, trace = timed_leave(c, via, g, [c.node_id(i) for i in range(3) if i != gi])
        log(f"d: leave {g}: {t}s trace {trace}")
        c.kill(gi, signal.SIGTERM)
        OUT.update(d_leave=t, d_writes_after_s=writes_go_on(c, via, "post"))
        OUT["d_group_after"] = group(c, via)
    finally:
        c.stop()


def scenario_mixed(root):
    old = os.environ["OLD_TREE"]
    new = os.environ.get("PYTHONPATH", "")
    c = start(f"{root}/m", 3, env_of=lambda i: {"PYTHONPATH": old if i < 2 else new})
    try:
        t, trace = timed_leave(c, 0, "n3", ["n1", "n2"], budget_s=30)
        log(f"mixed: leave n3 (new code; n1, n2 old code): {t}s trace {trace}")
        OUT["mixed_leave_n3"] = t
        print(c.log_tail(2, 8))
    finally:
        c.stop()


def scenario_e(root):
    """System sim seed 7 with real processes: group [n1, n2, n3] + n4; n2 loses its disk and
    comes back as a replacement (alive, no vote); n3 leaves at once and is stopped (SIGTERM)
    the moment its leave finished. Is the log still live (n2 re-admitted, writes, a join)?"""
    import shutil
    c = start(f"{root}/e", 3, extra_nodes=1)
    try:
        writes_go_on(c, 0, "pre")
        c.kill(1)
        shutil.rmtree(f"{c.root}/{c.node_id(1)}")
        c.start_node(1, ["--join", c.url(0)])
        t0 = time.monotonic()
        with c.client(0, timeout_s=10) as cl:
            cl.leave("n3")
        trace, last, left = [], None, None
        while time.monotonic() - t0 < 60:
            g = group(c, 0)
            if g != last:
                trace.append((round(time.monotonic() - t0, 2), g))
                last = g
            try:
                if "n3" not in {m["id"] for m in c.cluster_info(0)["members"]}:
                    left = round(time.monotonic() - t0, 2)
                    c.kill(2, signal.SIGTERM)
                    break
            except Exception:
                pass
            time.sleep(0.05)
        log(f"e: n3 left at {left}s (group then {group(c, 0)}), trace {trace}")
        OUT["e_leave_n3"] = left
        OUT["e_group_at_finish"] = group(c, 0)
        live = False
        t1 = time.monotonic()
        while time.monotonic() - t1 < 40:
            try:
                v = c.node_view(1)["metadata"]
                if not v["replacing"] and v["voting"]:
                    writes_go_on(c, 0, "post", 5)
                    live = True
                    break
            except Exception:
                pass
            time.sleep(0.2)
        OUT["e_log_live_after_s"] = round(time.monotonic() - t1, 2) if live else None
        OUT["e_group_after"] = group(c, 0)
        log("e: log live:", OUT["e_log_live_after_s"], "group", OUT["e_group_after"])
    finally:
        c.stop()


if __name__ == "__main__":
    root = tempfile.mkdtemp(prefix="review11-", dir="/tmp")
    which = sys.argv[1:] or ["a", "b", "c", "d"]
    try:
        for s in which:
            globals()[f"scenario_{s}"](root)
    finally:
        log("RESULT", os.environ.get("PYTHONPATH"), json.dumps(OUT))
