"""Key distributions of the load generator (loadgen.keys), seeded so every count is fixed."""

import random
from collections import Counter

import pytest

from loadgen.keys import KeyPicker, Zipfian, key_name


def _draws(dist, n=40_000, keys=1000, part=0, parts=1, reads=True, seed=1):
    p = KeyPicker(dist, keys, part, parts, random.Random(seed))
    return p, [p.pick(reads) for _ in range(n)]


def test_uniform_is_flat_over_the_share():
    _, d = _draws("uniform", keys=100)
    c = Counter(d)
    assert set(c) == set(range(100))
    assert max(c.values()) < 1.3 * 400 and min(c.values()) > 0.7 * 400


def test_zipfian_matches_the_ideal_probabilities():
    z = Zipfian(1000)
    assert abs(sum(z.probability(k) for k in range(1000)) - 1.0) < 1e-9
    _, d = _draws("zipfian", n=100_000)
    c = Counter(d)
    for rank in (0, 1, 2, 9, 99):
        expected = z.probability(rank) * 100_000
        assert abs(c[rank] - expected) < 5 * expected ** 0.5, rank   # 5 standard deviations
    tail = sum(z.probability(k) for k in range(100, 1000)) * 100_000
    assert abs(sum(v for k, v in c.items() if k >= 100) - tail) < 5 * tail ** 0.5
    # Heavy head: the 10 hottest keys take far more than 1% of the draws.
    assert sum(c[k] for k in range(10)) > 0.3 * 100_000
    assert all(0 <= k < 1000 for k in d)


def test_processes_own_disjoint_shares():
    seen = []
    for part in range(3):
        p, d = _draws("zipfian", n=5000, keys=100, part=part, parts=3)
        assert all(k % 3 == part for k in d)
        assert set(d) <= set(p.own())
        seen.append(set(p.own()))
    assert set().union(*seen) == set(range(100))
    assert not (seen[0] & seen[1])


def test_latest_reads_the_most_recently_written_keys():
    p = KeyPicker("latest", 1000, 0, 1, random.Random(5))
    written = [p.pick(False) for _ in range(50)]
    assert written == list(range(50))          # writes walk the keys in order
    reads = Counter(p.pick(True) for _ in range(20_000))
    assert reads.most_common(1)[0][0] == 49     # the newest write is the hottest read
    recent = sum(v for k, v in reads.items() if 40 <= k <= 49)
    z = Zipfian(1000)
    expected = sum(z.probability(k) for k in range(10)) * 20_000   # ~40%
    assert abs(recent - expected) < 5 * expected ** 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown distribution"):
        KeyPicker("gaussian", 10, 0, 1, random.Random(1))
    with pytest.raises(ValueError):
        KeyPicker("uniform", 2, 0, 3, random.Random(1))
    assert key_name(42) == "lg-0000042"
