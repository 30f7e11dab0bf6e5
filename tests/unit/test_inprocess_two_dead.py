"""Two dead members removed, over the in-memory seams: five production nodes in one process
on virtual time (n1..n3 seeds, n4 and n5 joined). Last session the second removal abandoned
the first, which it then waited for: neither ever finished (sim seeds 9001, 9016, 9023)."""

from dynamopy.core.placement import replicas
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

SEEDS = ["n1", "n2", "n3"]


async def _join(c: InProcessCluster, mid: str) -> None:
    """``mid`` joins through a ready member (``InProcessCluster.start`` of a joiner)."""
    await c.start(mid)
    await until(lambda: _state_of(c, mid) == "normal", 60, f"{mid} is normal")


def _state_of(c: InProcessCluster, mid: str):
    m = c.node("n1").state.member(mid)
    return None if m is None else m.state


def test_two_dead_members_are_removed_and_every_acked_write_keeps_w_copies():
    async def main():
        c = InProcessCluster(SEEDS, seed=41, joiners=["n4", "n5"],
                             anti_entropy_interval_s=3600.0)
        await c.start_all()
        try:
            for mid in ("n4", "n5"):
                await _join(c, mid)
            acked: dict = {}

            async def write(lo: int, hi: int) -> None:
                for i in range(lo, hi):
                    key = b"k%d" % i
                    try:
                        acked[key] = (await c.coordinator("n1").write(
                            key, value=key, content_type="text/plain", deleted=False, w=2))[0]
                    except Exception:  # noqa: BLE001 - two of a key's replicas dead: refused
                        pass

            await write(0, 40)
            await c.crash("n4")
            await until(lambda: not c.node("n1").detector.is_up("n4"), 10, "n4 seen down")
            await c.node("n1").propose({"op": "remove", "id": "n4"})
            await write(40, 60)                 # during n4's removal (n5 is a gainer)
            await c.crash("n5")
            await until(lambda: not c.node("n1").detector.is_up("n5"), 10, "n5 seen down")
            first = c.node("n1").state
            epoch = await c.node("n2").propose({"op": "remove", "id": "n5"})
            # n1 learns the entry from the leader (when n2 leads, one message after n2)
            await until(lambda: c.node("n1").state.epoch >= epoch, 10, "n1 applied it")
            merged = c.node("n1").state
            await write(60, 80)                 # during the merged removal
            await until(lambda: _state_of(c, "n4") is None and _state_of(c, "n5") is None,
                        60, "both removals finish")
            final = c.node("n1").state
            copies = {}
            for key in acked:                  # before any read (a read repairs)
                token = final.ring.token(key)
                copies[key] = sorted(m for m in replicas(final, token).current
                                     if (rec := c.node(m).store.get(token, key)) is not None
                                     and rec.version >= acked[key])
            read = {}
            for key in acked:
                rec = await c.coordinator("n3").read(key, r=3)
                read[key] = None if rec is None else rec.version
            return first, merged, final, acked, copies, read
        finally:
            await c.stop_all()

    first, merged, final, acked, copies, read = run_virtual(main())
    assert first.change == ("remove", "n4") and "n5" in first.gainers()
    assert merged.leaving() == ("n4", "n5") and merged.change_epoch > first.change_epoch
    assert sorted(final.members) == ["n1", "n2", "n3"] and final.change is None
    assert len(acked) > 40
    assert {k: len(v) for k, v in copies.items() if len(v) < 2} == {}   # W = 2 copies each
    assert read == acked                                                  # R = N reads
