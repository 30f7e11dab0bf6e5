"""``node/bootstrap.py`` ``_identities``: what a seed with an empty directory makes of the
seeds' ``GET /node`` answers before the bootstrap (a stub contact: this module alone)."""

import asyncio
from types import SimpleNamespace

from dynamopy.node.bootstrap import BOOTSTRAPPED, SEEN_BEFORE, _identities
from dynamopy.node.clock import Wakeup

SEEDS = ["http://a", "http://b", "http://c"]


def _node(token):
    async def sleep(s):
        await asyncio.sleep(0)
    return SimpleNamespace(id="c", stopping=False, metalog=SimpleNamespace(token=token),
                           clock=SimpleNamespace(sleep=sleep), identity_asked=Wakeup())


class Contact:
    def __init__(self, answers):
        self.answers = answers

    async def node_info(self, url):
        return self.answers[url]


def _answers(**extra_b):
    base = {u: {"id": u[-1], "url": u, "peer": u[-1] + ":1", "epoch": 0,
                "store_token": "t" + u[-1]} for u in SEEDS}
    base["http://b"].update(extra_b)
    return base


def test_every_seed_before_the_bootstrap_gives_its_identity_with_its_store_token():
    out = asyncio.run(_identities(_node("tc"), Contact(_answers()), SEEDS))
    assert [(i["id"], i["token"]) for i in out] == [("a", "ta"), ("b", "tb"), ("c", "tc")]


def test_a_seed_that_adopted_this_id_under_another_store_token_means_it_was_wiped():
    """b adopted the seeds (before any bootstrap) when c's store had token "tc-old": c's old
    store may have voted for slot 0, so the new one must not vote before the bootstrap."""
    answers = _answers(seed_tokens={"a": "ta", "b": "tb", "c": "tc-old"})
    assert asyncio.run(_identities(_node("tc"), Contact(answers), SEEDS)) == SEEN_BEFORE
    answers = _answers(seed_tokens={"a": "ta", "b": "tb", "c": "tc"})  # its own: a restart
    assert isinstance(asyncio.run(_identities(_node("tc"), Contact(answers), SEEDS)), list)


def test_any_seed_with_an_epoch_means_the_cluster_exists():
    assert asyncio.run(_identities(_node("tc"), Contact(_answers(epoch=3)), SEEDS)) == BOOTSTRAPPED


def test_a_store_without_a_vote_of_its_own_says_it_will_not_vote(caplog):
    """The other side of test_inprocess_seed_crash_before_slot0: an empty store, or one that
    adopted the group without a vote, logs that it will not vote."""
    from dynamopy.node.bootstrap import _say_not_bootstrapping
    caplog.set_level("WARNING", logger="dynamopy.node.bootstrap")
    for started, what in ((False, "has no metadata log on disk"),
                          (True, "holds no acceptor state of its own")):
        caplog.clear()
        node = SimpleNamespace(id="c", metalog=SimpleNamespace(voter=False, started=started))
        _say_not_bootstrapping(node, SEEDS, BOOTSTRAPPED)
        assert f"c {what} and the cluster of" in caplog.text
        assert "it will not vote" in caplog.text
    node = SimpleNamespace(id="c", metalog=SimpleNamespace(voter=True, started=True))
    caplog.clear()
    _say_not_bootstrapping(node, SEEDS, SEEN_BEFORE)
    assert "will not vote" not in caplog.text and "votes with it" in caplog.text
