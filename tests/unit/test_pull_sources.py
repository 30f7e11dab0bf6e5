"""core/placement.pull_sources in a merged removal: a gainer asks each source only for
tokens that source replicated (in the current ring or a stage ring of the change), never
asks itself, and still covers every token it gains (issue 18's mutation run)."""

import pytest

from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
from dynamopy.core.placement import pull_sources


def _merged(size, n, x):
    seeds = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"} for i in range(1, size + 1)]
    s = ClusterState().apply(bootstrap_entry(seeds, Settings(n=n, r=1, w=1)))
    s = s.apply({"op": "remove", "id": x, "merge": True, "at_ms": 1})
    y = s.gainers()[0]
    s = s.apply({"op": "remove", "id": y, "merge": True, "at_ms": 1})
    assert s.leaving() == (x, y)
    return s


@pytest.mark.parametrize("size,n,x", [(6, 3, "n6"), (5, 2, "n2")])
def test_a_gainer_pulls_each_token_only_from_members_that_replicated_it(size, n, x):
    s = _merged(size, n, x)
    rings = [s.ring, *s.stage_rings()]
    for g in s.gainers():
        plan = pull_sources(s, g)
        assert g not in plan                       # never asks itself
        for src, spans in plan.items():
            assert spans == sorted(spans)
            for a, b in spans:
                assert a < b
                for p in range(s.ring.partition_of(a), s.ring.partition_of(b - 1) + 1):
                    token = max(a, s.ring.partition_range(p)[0])
                    assert any(src in r.preference_list_for_token(token, n) for r in rings), \
                        (g, src, a, b, p)
        gained = [(mv.start, mv.end) for mv in s.transfers() if g in mv.gained]
        for start, end in gained[:: max(1, len(gained) // 50)]:
            assert any(a <= start < b for spans in plan.values() for a, b in spans)
