"""Review 13: the tombstone purge asks every member of the ring (ddb1e10, 8301141), with real
`dynamopy serve` processes on 127.0.0.1 (HTTP ports 19500-19599, peer ports +200).

Run from a cwd outside every tree, with the tree under test first on PYTHONPATH:
  cd /tmp && PYTHONPATH=/work/wt/rev13 python -m tests.repro.repro_review13_purge join plain
Scenarios:
  join   4 nodes N=3 (R=2, W=2, --hint-window-s 0, --anti-entropy-interval-s 1, grace 3 s),
         60 keys written at W=3. n4 (an old owner that loses ranges when n5 joins) is
         SIGSTOPped, n5 joins (the ring change finishes while n4 is paused, so n4's hand-off
         of the ranges it lost cannot run), every key is deleted at W=2 on the new owners,
         and n4 stays paused for GRACE + 8 s. Then SIGCONT: n4 learns the new ring, hands
         off its old copies and drops them. Checked: no key comes back (GET R=3 is 404 and no
         node holds a live record of any key, `GET /node/kv/KEY`), and once n4 is back the
         tombstones are purged (`GET /node` anti_entropy.tombstones_purged summed > 0).
         Before ddb1e10 the keys n4 lost were purged while it was paused and its late
         hand-off gave the new owners the old values back.
  plain  4 nodes, no ring change: 40 keys written, deleted; past the grace the tombstones
         are purged everywhere and every key stays 404.
Every wait is bounded; every node is stopped by PID in `finally` (LocalCluster.stop).
"""

import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import dynamopy.launch  # noqa: E402

dynamopy.launch.PEER_OFFSET = 200   # peer ports inside 19500-19899 too

import tests.integration.cluster as cluster_mod  # noqa: E402
from dynamopy.client import DynamoError  # noqa: E402
from tests.integration.cluster import LocalCluster  # noqa: E402
from tests.repro.measure_leaves import log, settled  # noqa: E402

GRACE_S = 3
FLAGS = ["--request-timeout-s", "1.5", "--hint-window-s", "0", "--anti-entropy-interval-s", "1",
         "--anti-entropy-rate", "100000", "--tombstone-grace-s", str(GRACE_S)]
BASES = {"join": 19500, "plain": 19520}
OUT: dict = {}


def start(root, base, nodes=4):
    cluster_mod.allocate_ports = lambda count: base
    c = LocalCluster(root, nodes, n=3, r=2, w=2, extra=FLAGS)
    try:
        for i in range(nodes):
            c.start_node(i)
        c.wait_ready(range(nodes), 60)
        ids = [c.node_id(i) for i in range(nodes)]
        c.wait_until(lambda: settled(c, 0, ids), 60, "all normal")
    except BaseException:
        c.stop()
        raise
    return c


def run_all(fn, items):
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(fn, items))


def put_all(c, keys, w):
    def one(k):
        with c.client(0, timeout_s=10) as cl:
            return cl.put(k, f"v-{k}".encode(), w=w)["version"]
    return dict(zip(keys, run_all(one, keys)))


def delete_all(c, keys, via=0, w=2):
    def one(k):
        with c.client(via, timeout_s=10) as cl:
            return cl.delete(k, w=w)["version"]
    return dict(zip(keys, run_all(one, keys)))


def prefs(c, keys, via=0):
    def one(k):
        with c.client(via, timeout_s=5) as cl:
            return cl.preference_list(k)
    return dict(zip(keys, run_all(one, keys)))


def quorum_reads(c, keys, via=0, r=3):
    """{key: what GET R=r returned}: 404, a live value (resurrected), or an error text."""
    def one(k):
        with c.client(via, timeout_s=10) as cl:
            try:
                item = cl.get(k, r=r)
                return k, ("LIVE", item.version)
            except DynamoError as e:
                return k, e.status
    return dict(run_all(one, keys))


def live_copies(c, keys, nodes):
    """{key: {node: version}} of every live record of ``keys`` on ``nodes`` (GET /node/kv)."""
    out: dict = {}
    for i in nodes:
        for k in keys:
            rec = c.local_record(i, k)
            if rec is not None and not rec["deleted"]:
                out.setdefault(k, {})[c.node_id(i)] = rec["version"]
    return out


def records_left(c, keys, nodes):
    return sum(c.local_record(i, k) is not None for i in nodes for k in keys)


def purged_total(c, nodes):
    return sum(c.node_view(i)["anti_entropy"]["tombstones_purged"] for i in nodes)


def scenario_join(root):
    c = start(f"{root}/join", BASES["join"])
    victim = 3  # n4
    try:
        info = c.cluster_info(0)
        log("metadata group", info["metadata_group"])
        keys = [f"k{i}" for i in range(60)]
        put_all(c, keys, w=3)
        before = prefs(c, keys)
        held = {k for k in keys if c.local_record(victim, k) is not None}
        c.pause(victim)
        paused_at = time.monotonic()
        try:
            c.wait_until(lambda: not {m["id"]: m["alive"] for m in c.cluster_info(0)["members"]}[
                c.node_id(victim)], 30, "n4 seen down")
            j = c.add_node()
            c.wait_ready([j], 90)
            ids = [c.node_id(i) for i in range(5)]
            c.wait_until(lambda: settled(c, 0, ids), 90, "n5 joined")
            after = prefs(c, keys)
            lost = sorted(k for k in keys if "n4" in before[k] and "n4" not in after[k])
            log(f"join finished {time.monotonic() - paused_at:.1f}s after the pause; n4 held "
                f"{len(held)} keys, lost {len(lost)} of them to the new ring")
            deleted_at = time.monotonic()
            delete_all(c, keys)
            time.sleep(GRACE_S + 8)
            up = [i for i in c.procs if i != victim]
            during = {"purged_while_n4_paused": purged_total(c, up),
                      "lost_keys_R3": {str(v): n for v, n in _count(quorum_reads(c, lost)).items()},
                      "live_copies_on_up_nodes": live_copies(c, keys, up),
                      "paused_s_after_delete": round(time.monotonic() - deleted_at, 1)}
            log("while n4 paused", during)
            OUT["join_during"] = during
        finally:
            c.resume(victim)
        t0 = time.monotonic()
        every = list(c.procs)
        resurrected = {}
        purged = 0
        while time.monotonic() - t0 < 60:
            time.sleep(3)
            reads = quorum_reads(c, keys)
            resurrected = {k: v for k, v in reads.items() if v != 404}
            live = live_copies(c, keys, every)
            purged = purged_total(c, every)
            log(f"after SIGCONT {time.monotonic() - t0:.0f}s: not-404 {len(resurrected)} "
                f"live copies {len(live)} purged {purged} records left "
                f"{records_left(c, keys, every)}")
            if resurrected or live:
                break
            if purged >= len(keys) and records_left(c, keys, every) == 0:
                break
        OUT["join_after"] = {"not_404": resurrected, "live_copies": live_copies(c, keys, every),
                             "purged": purged, "records_left": records_left(c, keys, every)}
        log("join result", OUT["join_after"])
        ok = not OUT["join_after"]["not_404"] and not OUT["join_after"]["live_copies"] \
            and purged > 0
        log("JOIN", "PASS" if ok else "FAIL")
        return ok
    finally:
        c.stop()


def _count(reads):
    out: dict = {}
    for v in reads.values():
        v = v[0] if isinstance(v, tuple) else v
        out[v] = out.get(v, 0) + 1
    return out


def scenario_plain(root):
    c = start(f"{root}/plain", BASES["plain"])
    try:
        keys = [f"p{i}" for i in range(40)]
        put_all(c, keys, w=3)
        delete_all(c, keys, w=3)
        every = list(c.procs)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 40:
            time.sleep(2)
            if records_left(c, keys, every) == 0:
                break
        reads = quorum_reads(c, keys)
        OUT["plain"] = {"purged": purged_total(c, every), "records_left": records_left(c, keys, every),
                        "reads": _count(reads), "live": live_copies(c, keys, every),
                        "took_s": round(time.monotonic() - t0, 1)}
        log("plain", OUT["plain"])
        ok = OUT["plain"]["purged"] >= len(keys) and not OUT["plain"]["live"] and \
            all(v == 404 for v in reads.values())
        log("PLAIN", "PASS" if ok else "FAIL")
        return ok
    finally:
        c.stop()


def main():
    which = sys.argv[1:] or ["join", "plain"]
    root = tempfile.mkdtemp(prefix="review13-")
    results = {}
    for s in which:
        results[s] = {"join": scenario_join, "plain": scenario_plain}[s](root)
    log("results", results, "tree", os.environ.get("PYTHONPATH"))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
