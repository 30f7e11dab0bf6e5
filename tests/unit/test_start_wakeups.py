"""What a starting node waits on is woken, not only polled: a seed asks the seeds again as soon
as one of them asks it for its identity (``node/bootstrap.py``), but not when its own
bootstrap asks itself; the failure detector pings added members at once
(``node/detector.py``); ``dynamopy serve`` starts bootstrapping only once its own HTTP
listens (``cli/serve.py``); the first seed of a bootstrap leads at its first tick and
proposes the bootstrap entry as soon as it leads (``node/metalog.py``)."""

from __future__ import annotations

import asyncio
import socket
import types

from dynamopy.api.app import create_app
from dynamopy.core.membership import ClusterState, Member
from dynamopy.node import bootstrap
from dynamopy.node.clock import Wakeup
from dynamopy.node.detector import PING_INTERVAL_S, FailureDetector
from dynamopy.node.metalog import ELECTION_TICKS, TICK_S, first_candidate
from dynamopy.node.metrics import Metrics
from dynamopy.sim.clock import NodeClock, run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

SEEDS = ["http://a", "http://b", "http://c"]


# The stand-in node's clock: bootstrap rate-limits its log lines on ``node.clock.monotonic``.
_CLOCK = types.SimpleNamespace(monotonic=lambda: asyncio.get_running_loop().time())


def _seed(url):
    return {"id": url[-1], "url": url, "peer": url[-1] + ":1", "epoch": 0, "store_token": "t"}


def test_a_seed_asks_again_as_soon_as_another_seed_asks_it():
    """b does not answer the first round; b comes up and asks c (GET /node sets c's
    ``identity_asked``): c's next round follows at once, not after ``RETRY_S``."""
    node = types.SimpleNamespace(id="c", stopping=False, identity_asked=Wakeup(), clock=_CLOCK,
                                 metalog=types.SimpleNamespace(token="t", started=False,
                                                               foreign=None))
    rounds = []

    class Contact:
        async def node_info(self, url):
            loop = asyncio.get_running_loop()
            if url == SEEDS[0]:
                rounds.append(loop.time())
            if url == "http://b" and len(rounds) == 1:
                loop.call_later(0.01, node.identity_asked.set)  # b is up, and asks c
                raise bootstrap.ContactError("b is not up yet")
            return _seed(url)

    async def main():
        return await bootstrap._identities(node, Contact(), SEEDS)

    out = run_virtual(main())
    assert [i["id"] for i in out] == ["a", "b", "c"]
    assert len(rounds) == 2 and rounds[1] - rounds[0] < bootstrap.RETRY_S / 2


def test_unasked_a_seed_waits_retry_s_between_rounds():
    node = types.SimpleNamespace(id="c", stopping=False, identity_asked=Wakeup(), clock=_CLOCK,
                                 metalog=types.SimpleNamespace(token="t", started=False,
                                                               foreign=None))
    rounds = []

    class Contact:
        async def node_info(self, url):
            if url == SEEDS[0]:
                rounds.append(asyncio.get_running_loop().time())
            if url == "http://b" and len(rounds) < 3:
                raise bootstrap.ContactError("b is not up yet")
            return _seed(url)

    run_virtual(bootstrap._identities(node, Contact(), SEEDS))
    assert len(rounds) == 3
    assert all(b - a >= bootstrap.RETRY_S for a, b in zip(rounds, rounds[1:]))


def test_get_node_wakes_a_waiting_seed_unless_its_own_bootstrap_asks():
    node = types.SimpleNamespace(id="n1", identity_asked=Wakeup(), identity_answered=frozenset(),
                                 node_view=lambda: {"id": "n1"}, metrics=Metrics(),
                                 config=types.SimpleNamespace(max_value_bytes=1024, n=3,
                                                              host="127.0.0.1"),
                                 state=types.SimpleNamespace(bootstrapped=False))
    app = create_app(node)

    def get_node(headers):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/node", "raw_path": b"/node",
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        asyncio.run(app(scope, receive, send))
        return sent[0]["status"]

    own = [(bootstrap.ASKER_HEADER.lower().encode(), b"n1")]
    assert get_node(own) == 200 and not node.identity_asked.is_set()
    assert get_node([(bootstrap.ASKER_HEADER.lower().encode(), b"n2")]) == 200
    assert node.identity_asked.is_set()
    node.identity_asked.clear()
    assert get_node([]) == 200 and node.identity_asked.is_set()


def test_the_detector_pings_added_members_at_once():
    members = {"n1": Member("n1", "mem://n1", "n1", 1)}
    state = [ClusterState()]
    pinged = []

    async def call_peer(member, method, payload, timeout_s):
        pinged.append((member, asyncio.get_running_loop().time()))
        return {"epoch": 1}

    async def main():
        d = FailureDetector(me="n2", state=lambda: state[0], clock=NodeClock(),
                            metrics=Metrics(), call_peer=call_peer,
                            note_epoch=lambda e, m: None, max_clock_offset_ms=0,
                            on_alive=lambda m: None)
        task = asyncio.create_task(d.run())
        await asyncio.sleep(PING_INTERVAL_S * 1.5)  # one round with no other member
        old, state[0] = state[0], ClusterState(epoch=1, members={
            **members, "n2": Member("n2", "mem://n2", "n2", 2)})
        added_at = asyncio.get_running_loop().time()
        d.on_state_change(old, state[0])
        await asyncio.sleep(0.01)
        task.cancel()
        return added_at

    added_at = run_virtual(main())
    assert pinged and pinged[0][0] == "n1" and pinged[0][1] - added_at < 0.01


def test_serve_runs_on_listening_once_its_listener_is_bound():
    import uvicorn

    from dynamopy.cli.serve import listening_server

    async def app(scope, receive, send):  # pragma: no cover - never asked
        pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seen = []

    async def main():
        server = None

        def on_listening():
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                seen.append("connected")
            server.should_exit = True

        server = listening_server()(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                   loop="none", lifespan="off",
                                                   log_level="warning"), on_listening)
        await asyncio.wait_for(server.serve(), 10)

    asyncio.run(main())
    assert seen == ["connected"]


def test_the_first_seed_bootstraps_without_waiting_an_election_timeout():
    """In virtual time: the seeds adopt the group together; the first candidate (by store
    token) campaigns at its first tick and proposes the bootstrap entry as soon as it leads: every seed is ready
    before any other seed's election timeout (at least ``ELECTION_TICKS`` ticks) could have
    fired, and before a leader polling for its leadership every ``RETRY_S`` would have
    proposed."""
    async def main():
        c = InProcessCluster(["n1", "n2", "n3"], seed=3)
        start = asyncio.get_running_loop().time()
        await c.start_all()
        try:
            await until(lambda: all(c.node(i).state.bootstrapped for i in c.ids), 5, "bootstrap")
            first = first_candidate(tuple(c.ids), {i["id"]: i["token"] for i in c.identities()})
            return (asyncio.get_running_loop().time() - start,
                    [c.node(i).metalog.leader for i in c.ids], first)
        finally:
            await c.stop_all()

    took, leaders, first = run_virtual(main())
    assert leaders == [first] * 3
    assert took < min(ELECTION_TICKS * TICK_S, bootstrap.RETRY_S)


def test_the_first_candidate_is_one_seed_all_agree_on_and_not_always_the_same():
    seeds = ("n1", "n2", "n3")
    firsts = set()
    for k in range(30):
        tokens = {i: f"{k:04x}{i}" for i in seeds}
        first = first_candidate(seeds, tokens)
        assert first == first_candidate(seeds, dict(reversed(tokens.items())))
        firsts.add(first)
    assert firsts == set(seeds)


def test_two_seeds_waiting_for_a_third_do_not_wake_each_other_but_the_third_wakes_them():
    """Seeds a and b are up, c is not: a asking b (GET /node, through the real app) must not
    wake b into asking again at once, or the two ask each other in a loop without pause (a
    busy CPU and a log line per round until c comes up); each asks about once per
    ``RETRY_S``. When c comes up and asks them, both ask again at once and are done."""
    ids = ("a", "b")
    nodes, apps = {}, {}
    for i in ids:
        nodes[i] = types.SimpleNamespace(
            id=i, stopping=False, identity_asked=Wakeup(), identity_answered=frozenset(),
            clock=_CLOCK,
            metalog=types.SimpleNamespace(token="t", started=False, foreign=None),
            node_view=lambda i=i: _seed(f"http://{i}"), metrics=Metrics(),
            config=types.SimpleNamespace(max_value_bytes=1024, n=3, host="127.0.0.1"),
            state=types.SimpleNamespace(bootstrapped=False))
        apps[i] = create_app(nodes[i])
    rounds = {i: [] for i in ids}
    c_up = [False]

    async def get_node(app, asker):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/node", "raw_path": b"/node",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80),
                 "headers": [(bootstrap.ASKER_HEADER.lower().encode(), asker.encode())]}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        await app(scope, receive, send)

    class Contact:
        def __init__(self, me):
            self.me = me

        async def node_info(self, url):
            who = url[-1]
            if who == "a":
                rounds[self.me].append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.001)  # a round trip on 127.0.0.1
            if who == "c" and not c_up[0]:
                raise bootstrap.ContactError("c is not up yet")
            if who in apps:
                await get_node(apps[who], self.me)
            return _seed(url)

    async def main():
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(bootstrap._identities(nodes[i], Contact(i), SEEDS))
                 for i in ids]
        await asyncio.sleep(2.0)
        counted = {i: len(rounds[i]) for i in ids}
        c_up[0] = True  # c comes up and asks a and b
        up_at = loop.time()
        for i in ids:
            await get_node(apps[i], "c")
        done = await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return counted, [r[-1] - up_at for r in rounds.values()], done

    counted, last_after_up, done = run_virtual(main())
    for i in ids:
        assert counted[i] <= 2.0 / bootstrap.RETRY_S + 2, counted  # not a loop without pause
    assert all(d is not None and [s["id"] for s in d] == ["a", "b", "c"] for d in done)
    assert all(dt < 0.05 for dt in last_after_up), last_after_up  # woken by c, not polling
