"""Review 12: anti-entropy convergence with real `dynamopy serve` processes after 5b62cd3
(the per-(peer, ring, N) memo of shared ranges and their cover; one-pass tree walks).

Run from a cwd outside every tree, with the tree under test first on PYTHONPATH:
  cd /tmp && PYTHONPATH=/work/wt/review12 python -m tests.repro.repro_review12_ae a
  (or: python /work/wt/review12/tests/repro/repro_review12_ae.py a)
Scenarios:
  a      5 nodes N=3: n3 killed, writes, overwrites and deletes at W=2, n3 restarted: every
         key's three replicas hold its last write (exact version and tombstone flag).
  b      a, then n6 joins (ring change), then a co-replica is SIGSTOPped (not killed: a
         restarted node has an empty memo, a paused one keeps it) while writes and deletes
         go on, resumed; checked on every replica of the new ring. Then n2 leaves, the same
         again on the ring after the leave.
  c      N through POST /cluster/config (the README says N is fixed at bootstrap: expect a
         400 and N unchanged), then a kill/restart round converges.
  big    a with 1,000 keys, then 4,000 new ones and 666 overwrites/deletes while n3 is down
         (the walk's leaf level then spans several ae_tree batches of 4,096 nodes).
  p      tombstones with a 2 s grace while n3 is down past it: nothing purged too early (no
         live value back), and after the restart every deleted key is gone everywhere.
  mixed  a with n1, n2 on OLD_TREE (the parent of 5b62cd3), n3..n5 on this tree, n2 (old
         code) the one killed: the wire format must be unchanged. OLD_TREE is a checkout of
         5b62cd3^, e.g. `git -C /work/main worktree add --detach /work/wt/review12-base 5b62cd3^`.
Hints are off (--hint-window-s 0), so only anti-entropy can repair (no client reads the
keys before the check; the check reads each replica's own record, GET /node/kv/KEY).
Every wait is bounded; every node is stopped by PID at the end (LocalCluster.stop).
"""

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.integration.cluster import LocalCluster  # noqa: E402
from tests.repro.measure_leaves import log, settled  # noqa: E402

AE = ["--request-timeout-s", "1.5", "--hint-window-s", "0",
      "--anti-entropy-interval-s", "1", "--anti-entropy-rate", "100000"]
OUT: dict = {}


def alive(c, observer, member):
    return {m["id"]: m["alive"] for m in c.cluster_info(observer)["members"]}[member]


class Model:
    """The last acknowledged write of every key: (version, deleted)."""

    def __init__(self):
        self.last: dict = {}

    def run(self, c, via, ops, w=2):
        def one(op):
            kind, key, val = op
            with c.client(via, timeout_s=10) as cl:
                r = cl.put(key, val, w=w) if kind == "put" else cl.delete(key, w=w)
            return key, r["version"], kind == "del"
        with ThreadPoolExecutor(8) as pool:
            for key, version, deleted in pool.map(one, ops):
                self.last[key] = (version, deleted)


def index_of(c, node_id):
    return next(i for i in c.procs if c.node_id(i) == node_id)


def divergent(c, model, via, skip=(), purged=False):
    """Keys whose preference-list replicas (ring as node ``via`` sees it) do not all hold the
    model's last write: {key: {node: (version, deleted) or None}}. ``purged``: a deleted key
    must be gone (None) on every replica instead."""
    def check(key):
        with c.client(via, timeout_s=5) as cl:
            pl = cl.preference_list(key)
        want = model.last[key]
        if purged and want[1]:
            want = None
        got = {}
        for m in pl:
            if m in skip:
                continue
            rec = c.local_record(index_of(c, m), key)
            got[m] = None if rec is None else (rec["version"], rec["deleted"])
        bad = {m: g for m, g in got.items() if g != want}
        return key, (got if bad else None), len(got)
    out, replicas = {}, 0
    with ThreadPoolExecutor(8) as pool:
        for key, bad, n in pool.map(check, sorted(model.last)):
            replicas += n
            if bad:
                out[key] = bad
    return out, replicas


def outcomes(c):
    """{outcome: count} of every running node's last exchange with each peer."""
    out: dict = {}
    for i in c.procs:
        if c.launch.running(i):
            for p in c.node_view(i)["anti_entropy"]["peers"].values():
                out[p["outcome"]] = out.get(p["outcome"], 0) + 1
    return out


def wait_converged(c, model, via, name, budget_s=60.0, purged=False):
    t0 = time.monotonic()
    r0 = repaired(c)
    while True:
        bad, replicas = divergent(c, model, via, purged=purged)
        took = round(time.monotonic() - t0, 1)
        if not bad:
            OUT[name] = {"converged_s": took, "keys": len(model.last), "replicas_checked": replicas,
                         "repaired_while_waiting": repaired(c) - r0,
                         "last_exchange_outcomes": outcomes(c)}
            log(name, OUT[name])
            return True
        if time.monotonic() - t0 > budget_s:
            sample = dict(list(bad.items())[:5])
            OUT[name] = {"converged_s": None, "divergent_keys": len(bad), "keys": len(model.last),
                         "sample": {k: {m: v for m, v in g.items()} for k, g in sample.items()}}
            log(name, "NOT CONVERGED", json.dumps(OUT[name], default=str))
            return False
        log(name, f"{len(bad)} divergent keys after {took}s")
        time.sleep(2)


def repaired(c):
    total = 0
    for i in c.procs:
        if not c.launch.running(i):
            continue
        v = c.node_view(i)["anti_entropy"]
        total += v["keys_repaired"]
    return total


def ops_round(tag, start, count, old_keys):
    """``count`` new keys, overwrites of a third of ``old_keys`` and deletes of another third."""
    ops = [("put", f"{tag}-{i}", f"{tag}{i}".encode()) for i in range(start, start + count)]
    ops += [("put", k, f"{tag}-over".encode()) for k in old_keys[0::3]]
    ops += [("del", k, None) for k in old_keys[1::3]]
    return ops


def start(root, nodes, env_of=None, extra=()):
    c = LocalCluster(root, nodes, n=3, r=2, w=2, extra=AE + list(extra))
    env_of = env_of or (lambda i: None)
    c.env_of = env_of
    try:
        for i in range(nodes):
            c.start_node(i, env=env_of(i))
        c.wait_ready(range(nodes), 60)
        ids = [c.node_id(i) for i in range(nodes)]
        c.wait_until(lambda: settled(c, 0, ids), 60, "all normal")
    except BaseException:
        c.stop()
        raise
    return c


def kill_write_restart(c, model, victim, tag, via=0, count=300):
    """Kill ``victim``, write/overwrite/delete at W=2 while it is down, restart it."""
    old = sorted(k for k, (v, d) in model.last.items() if not d)
    c.kill(victim)
    c.wait_until(lambda: not alive(c, via, c.node_id(victim)), 20, "victim seen down")
    t = time.monotonic()
    model.run(c, via, ops_round(tag, 0, count, old))
    log(tag, f"{len(model.last)} keys in the model, ops took {time.monotonic() - t:.1f}s")
    assert all(v == 0 for v in c.node_view(via)["hints"].values())
    c.start_node(victim, env=c.env_of(victim))
    c.wait_ready([victim], 60)


def pause_write_resume(c, model, victim, tag, via=0, count=200):
    """SIGSTOP ``victim`` (its memo survives), write/overwrite/delete at W=2, SIGCONT it."""
    old = sorted(k for k, (v, d) in model.last.items() if not d)
    c.pause(victim)
    try:
        c.wait_until(lambda: not alive(c, via, c.node_id(victim)), 20, "victim seen down")
        model.run(c, via, ops_round(tag, 0, count, old))
    finally:
        c.resume(victim)
    log(tag, f"{len(model.last)} keys in the model")


def _tree_of(pid):
    """The PYTHONPATH a node process runs with (which checkout it runs)."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(x.split(b"=", 1) for x in f.read().split(b"\0") if b"=" in x)
    return env.get(b"PYTHONPATH", b"").decode()


def scenario_a(root, env_of=None, name="a", victim=2, base=300, count=300):
    c = start(f"{root}/{name}", 5, env_of)
    try:
        model = Model()
        model.run(c, 0, [("put", f"base-{i}", b"b") for i in range(base)], w=3)
        r0 = repaired(c)
        kill_write_restart(c, model, victim, f"{name}1", count=count)
        ok = wait_converged(c, model, 0, f"{name}_after_restart")
        OUT[f"{name}_trees"] = {c.node_id(i): _tree_of(c.procs[i].pid) for i in c.procs}
        OUT[f"{name}_keys_repaired"] = repaired(c) - r0
        return c, model, ok
    except BaseException:
        c.stop()
        raise


def scenario_b(root):
    c, model, ok = scenario_a(root, name="b")
    try:
        ids = [c.node_id(i) for i in range(5)]
        t = time.monotonic()
        j = c.add_node()
        c.wait_ready([j], 60)
        ids.append(c.node_id(j))
        c.wait_until(lambda: settled(c, 0, ids), 90, "n6 joined")
        OUT["b_join_s"] = round(time.monotonic() - t, 1)
        wait_converged(c, model, 0, "b_after_join")
        # a pair that keeps its memo across the ring change: pause n4 (index 3)
        pause_write_resume(c, model, 3, "bj")
        wait_converged(c, model, 0, "b_join_pause")
        kill_write_restart(c, model, j, "bk", count=200)
        wait_converged(c, model, 0, "b_join_kill_joiner")
        t = time.monotonic()
        with c.client(0, timeout_s=10) as cl:
            cl.leave("n2")
        ids.remove("n2")
        c.wait_until(lambda: settled(c, 0, ids), 90, "n2 left")
        OUT["b_leave_s"] = round(time.monotonic() - t, 1)
        wait_converged(c, model, 0, "b_after_leave")
        pause_write_resume(c, model, 4, "bl")  # n5
        wait_converged(c, model, 0, "b_leave_pause")
    finally:
        c.stop()


def scenario_c(root):
    c = start(f"{root}/c", 5)
    try:
        with c.client(0, timeout_s=10) as cl:
            try:
                OUT["c_set_n"] = {"answer": cl.set_config(n=2)}
            except Exception as e:  # noqa
                OUT["c_set_n"] = {"refused": repr(e)[:200]}
        OUT["c_n_after"] = [c.cluster_info(i)["n"] for i in range(5)]
        log("c", OUT["c_set_n"], OUT["c_n_after"])
        model = Model()
        model.run(c, 0, [("put", f"base-{i}", b"b") for i in range(200)], w=3)
        kill_write_restart(c, model, 1, "c1", count=200)
        wait_converged(c, model, 0, "c_after_restart")
    finally:
        c.stop()


def scenario_p(root):
    """Tombstones with a 2 s grace: n3 is down while keys are deleted and past the grace;
    no replica may purge while n3 (a current replica) lacks the tombstone, so no live value
    comes back; after the restart every deleted key is gone from every replica."""
    c = start(f"{root}/p", 5, extra=["--tombstone-grace-s", "2"])
    try:
        model = Model()
        model.run(c, 0, [("put", f"base-{i}", b"b") for i in range(300)], w=3)
        old = sorted(model.last)
        c.kill(2)
        c.wait_until(lambda: not alive(c, 0, "n3"), 20, "n3 seen down")
        model.run(c, 0, ops_round("p1", 0, 100, old))
        time.sleep(4)  # every tombstone past its grace while n3 is down
        # while n3 is down: a deleted key n3 replicates must still be a tombstone on the up
        # replicas (n3 lacks it: no purge); one n3 does not replicate may be gone already;
        # a live value of a deleted key anywhere is a resurrection
        early, resurrected, purged_ok, bad = 0, 0, 0, 0
        for key, got in divergent(c, model, 0, skip=("n3",))[0].items():
            with c.client(0, timeout_s=5) as cl:
                n3_replica = "n3" in cl.preference_list(key)
            want = model.last[key]
            for g in got.values():
                if g == want:
                    continue
                if want[1] and g is None:
                    if n3_replica:
                        early += 1
                    else:
                        purged_ok += 1
                elif want[1] and g is not None and not g[1]:
                    resurrected += 1
                else:
                    bad += 1
        OUT["p_while_n3_down"] = {"purged_too_early": early, "resurrected": resurrected,
                                  "purged_not_n3_keys": purged_ok, "other_divergent": bad}
        log("p", OUT["p_while_n3_down"])
        c.start_node(2, env=c.env_of(2))
        c.wait_ready([2], 60)
        wait_converged(c, model, 0, "p_after_restart_purged", budget_s=90, purged=True)
    finally:
        c.stop()


def main():
    which = sys.argv[1:] or ["a"]
    root = tempfile.mkdtemp(prefix="review12-")
    t0 = time.monotonic()
    try:
        for s in which:
            if s == "a":
                c, _m, _ok = scenario_a(root)
                c.stop()
            elif s == "b":
                scenario_b(root)
            elif s == "c":
                scenario_c(root)
            elif s == "big":  # thousands of differing leaves: several ae_tree batches a level
                c, _m, _ok = scenario_a(root, name="big", base=1000, count=4000)
                c.stop()
            elif s == "p":
                scenario_p(root)
            elif s == "mixed":
                old, new = os.environ["OLD_TREE"], os.environ.get("PYTHONPATH", "")
                c, _m, _ok = scenario_a(root, lambda i: {"PYTHONPATH": old if i < 2 else new},
                                        name="mixed", victim=1)  # an old-code node
                c.stop()
    finally:
        OUT["total_s"] = round(time.monotonic() - t0, 1)
        log("RESULT", os.environ.get("PYTHONPATH"), json.dumps(OUT, default=str))


if __name__ == "__main__":
    main()
