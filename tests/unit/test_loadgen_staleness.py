"""Stale-read accounting on scripted histories with known stale reads (loadgen.staleness)."""

from loadgen.staleness import AckBook, StaleStats, summarize


def test_scripted_history_counts_exactly_the_stale_reads():
    book, stats = AckBook(), StaleStats()
    # key "a": versions 10, 20, 30 acked in that order; reads at chosen moments.
    s0 = book.before_read("a")             # nothing acked yet
    stats.add(book.versions_behind("a", s0, 0))          # 404: fresh (nothing to miss)
    book.acked("a", 10)
    s1 = book.before_read("a")
    stats.add(book.versions_behind("a", s1, 0))          # 404 after an ack: 1 behind
    book.acked("a", 20)
    book.acked("a", 30)
    s2 = book.before_read("a")
    assert book.versions_behind("a", s2, 10) == 2        # missed 20 and 30
    stats.add(book.versions_behind("a", s2, 10))
    stats.add(book.versions_behind("a", s2, 30))          # fresh
    stats.add(book.versions_behind("a", s2, 35))          # newer than any ack: fresh
    assert (stats.reads, stats.stale, stats.k_hist) == (5, 2, {1: 1, 2: 1})


def test_acks_after_the_read_was_sent_never_make_it_stale():
    book = AckBook()
    book.acked("k", 5)
    snap = book.before_read("k")
    book.acked("k", 9)          # concurrent with the read: acked while it was in flight
    assert book.versions_behind("k", snap, 5) == 0
    assert book.versions_behind("k", book.before_read("k"), 5) == 1


def test_out_of_order_acks_count_by_version_not_arrival():
    book = AckBook()
    for v in (30, 10, 20):      # versions come back in any order from different coordinators
        book.acked("k", v)
    snap = book.before_read("k")
    assert snap == (30, 3)
    assert book.versions_behind("k", snap, 10) == 2
    assert book.versions_behind("k", snap, 15) == 2
    assert book.versions_behind("k", snap, 20) == 1


def test_keys_are_independent():
    book = AckBook()
    book.acked("x", 100)
    assert book.versions_behind("y", book.before_read("y"), 0) == 0


def test_summary():
    s = summarize(100, 3, {"1": 2, "3": 1})
    assert s == {"max": 3, "mean_of_stale": round(5 / 3, 3),
                 "histogram": {"1": 2, "3": 1}, "fraction_of_reads": 0.03}
    assert summarize(0, 0, {})["max"] == 0


def test_k_counts_only_the_acks_before_the_read_was_sent():
    book = AckBook()
    book.acked("k", 5)
    book.acked("k", 7)
    snap = book.before_read("k")
    book.acked("k", 9)          # acked while the read was in flight: not one it missed
    assert book.versions_behind("k", snap, 3) == 2


def test_wilson_interval_of_a_measured_visibility():
    from loadgen.results import wilson
    lo, hi = wilson(80, 100)
    assert lo < 0.8 < hi and abs(lo - 0.711) < 0.002 and abs(hi - 0.867) < 0.002
    assert wilson(100, 100)[1] == 1.0 and wilson(0, 0) is None
