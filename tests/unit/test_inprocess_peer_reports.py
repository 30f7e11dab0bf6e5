"""The data path's peer calls (``Node.start_peer``, answered by callbacks) tell the failure
detector their outcome: a put answered by a replica is a success for it. In-process cluster,
virtual time."""

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster

IDS = ["n1", "n2", "n3"]


def test_every_remote_put_of_a_write_reports_its_replica_alive():
    async def main():
        async with InProcessCluster(IDS, seed=41) as c:
            node = c.node("n1")
            seen: dict[str, int] = {}
            report = node.detector.report_success

            def counting(member_id):
                seen[member_id] = seen.get(member_id, 0) + 1
                report(member_id)

            node.detector.report_success = counting
            for i in range(20):
                await c.coordinator("n1").write(b"k%d" % i, value=b"v", content_type="b",
                                                deleted=False, w=3)
            node.detector.report_success = report
            return seen

    seen = run_virtual(main())
    # W=3: every write waited for both remote puts; pings add a few at most.
    assert seen.get("n2", 0) >= 20 and seen.get("n3", 0) >= 20, seen
