"""The cluster identity the membership log carries (core/cluster_identity.py): the bootstrap
entry names the cluster from every seed's store token, identically whichever seed builds it;
an entry or snapshot without tokens is a legacy log that names no cluster."""

from __future__ import annotations

from dynamopy.core import cluster_identity
from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry

SEEDS = [{"id": f"n{i}", "url": f"http://h:{8000 + i}", "peer": f"h:{9000 + i}",
          "token": f"tok{i}"} for i in (1, 2, 3)]


def boot(seeds) -> tuple[dict, ClusterState]:
    entry = bootstrap_entry(seeds, Settings())
    return entry, ClusterState().apply(entry)


def test_every_seed_builds_the_same_cluster_id_and_the_state_keeps_it():
    entry, state = boot(SEEDS)
    other, _ = boot(list(reversed(SEEDS)))
    assert isinstance(entry["cluster"], str) and entry["cluster"] == other["cluster"]
    assert state.cluster == entry["cluster"]
    assert state.seed_tokens == {"n1": "tok1", "n2": "tok2", "n3": "tok3"}
    assert cluster_identity.of_value(entry) == (entry["cluster"], state.seed_tokens)


def test_a_seed_with_a_new_store_token_makes_another_cluster():
    wiped = [dict(m, token="fresh") if m["id"] == "n2" else m for m in SEEDS]
    assert boot(wiped)[0]["cluster"] != boot(SEEDS)[0]["cluster"]


def test_a_seed_without_a_token_makes_a_legacy_log():
    for missing in (None, ""):
        seeds = [dict(m, token=missing) if m["id"] == "n3" else m for m in SEEDS]
        entry, state = boot(seeds)
        assert "cluster" not in entry
        assert state.cluster is None and state.seed_tokens == {}
        assert "cluster" not in state.to_dict()


def test_slot_zero_values_that_name_no_cluster():
    entry, _ = boot(SEEDS)
    assert cluster_identity.of_value(None) == (None, {})  # a no-op chosen in slot 0
    assert cluster_identity.of_value("x") == (None, {})
    assert cluster_identity.of_value(dict(entry, op="join")) == (None, {})
    no_id = {k: v for k, v in entry.items() if k != "cluster"}
    assert cluster_identity.of_value(no_id) == (None, {})
    empty_token = dict(entry, members=[dict(m, token="") if m["id"] == "n1" else m
                                       for m in entry["members"]])
    assert cluster_identity.of_value(empty_token) == (None, {})
    tokenless = dict(entry, members=[{k: v for k, v in m.items() if k != "token"}
                                     for m in entry["members"]])
    assert cluster_identity.of_value(tokenless) == (None, {})


def test_a_snapshot_names_the_cluster_and_its_seed_tokens():
    _, state = boot(SEEDS)
    data = state.to_dict()
    assert cluster_identity.of_snapshot(data) == (state.cluster, state.seed_tokens)
    again = ClusterState.from_dict(data)
    assert (again.cluster, again.seed_tokens) == (state.cluster, state.seed_tokens)
    # a snapshot naming a cluster without tokens: bound by nothing but the id
    assert cluster_identity.of_snapshot({"cluster": "c1"}) == ("c1", {})
    assert cluster_identity.of_snapshot({"cluster": "c1", "seed_tokens": None}) == ("c1", {})
    for legacy in (None, "x", {}, {"cluster": None}, boot(
            [dict(m, token=None) for m in SEEDS])[1].to_dict()):
        assert cluster_identity.of_snapshot(legacy) == (None, {})


def test_the_identity_the_paxos_layer_gets_reads_both():
    entry, state = boot(SEEDS)
    ident = cluster_identity.identity()
    assert ident.of_value(entry) == (state.cluster, state.seed_tokens)
    assert ident.of_snapshot(state.to_dict()) == (state.cluster, state.seed_tokens)
