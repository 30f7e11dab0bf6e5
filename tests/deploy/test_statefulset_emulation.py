"""The rendered StatefulSet, run as local processes (see ``kubelet.py`` for what is emulated).

Pods 0..2 start together from the pod template (podManagementPolicy Parallel) and bootstrap
the cluster as its seeds; pod 3, scaled up from the same template, joins by itself and
becomes normal; pod 1, restarted on its volume, comes back as the same member without a
join; data written before each step is readable after it.
"""

from __future__ import annotations

import secrets
import time

import pytest

from dynamopy.client import Client, DynamoError
from tests.deploy.kubelet import EmulatedStatefulSet
from tests.deploy.tools import K8S, render

pytestmark = pytest.mark.integration


def _wait(predicate, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (DynamoError, KeyError, OSError) as e:
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"{what} not reached after {timeout_s}s (last error: {last!r})")


def _members(c: Client) -> dict[str, dict]:
    return {m["id"]: m for m in c.cluster()["members"]}


def _check_all(sts: EmulatedStatefulSet, token: str, pods, written: dict[str, bytes]) -> None:
    for k in pods:
        with Client(sts.url(k), token=token, timeout_s=10.0) as c:
            for key, value in written.items():
                assert c.get(key, r=2).value == value, (k, key)


def test_statefulset_forms_scales_up_and_restarts(tmp_path):
    objects = render(K8S)
    token = secrets.token_hex(16)
    sts = EmulatedStatefulSet(objects, tmp_path, {"dynamopy-secrets": {
        "cluster-secret": secrets.token_hex(32), "api-token": token}})
    written: dict[str, bytes] = {}
    try:
        # -- pods 0..2 start together and form the cluster ------------------------------
        for k in range(3):
            sts.start(k)
        sts.wait_ready(range(3), timeout_s=90)
        with Client(sts.url(0), token=token) as c:
            members = _wait(lambda: len(_members(c)) == 3 and _members(c), "3 members")
            assert sorted(members) == ["dynamopy-0", "dynamopy-1", "dynamopy-2"]
            for k in range(3):   # each advertises its stable DNS name under the headless Service
                m = members[f"dynamopy-{k}"]
                assert m["url"] == f"http://{sts.dns_name(k)}:8080"
                assert m["peer"] == f"{sts.dns_name(k)}:7000"
                assert m["state"] == "normal"
            info = c.cluster()
            assert sorted(info.get("metadata_group") or info["acceptors"]) == sorted(members)
            for i in range(20):
                written[f"k8s/{i}"] = f"before-scale-{i}".encode()
                c.put(f"k8s/{i}", written[f"k8s/{i}"])
        _check_all(sts, token, range(3), written)

        # -- scale up: pod 3 joins by itself and takes its ranges -----------------------
        with Client(sts.url(0), token=token) as c:
            epoch_before = c.cluster()["epoch"]
        sts.start(3)
        sts.wait_ready([3], timeout_s=90)
        with Client(sts.url(3), token=token) as c3:
            _wait(lambda: _members(c3).get("dynamopy-3", {}).get("state") == "normal",
                  "dynamopy-3 normal", timeout_s=90)
            ops = [(e["op"], e.get("id")) for e in c3.log(epoch_before)]
            assert ("join", "dynamopy-3") in ops and ("finish_join", "dynamopy-3") in ops, ops
            assert c3.node()["keys"] > 0   # it streamed data for the ranges it took over
            for i in range(20, 30):
                written[f"k8s/{i}"] = f"after-scale-{i}".encode()
                c3.put(f"k8s/{i}", written[f"k8s/{i}"])
        _check_all(sts, token, range(4), written)

        # -- pod 1 restarts on its volume: same member, no join --------------------------
        with Client(sts.url(0), token=token) as c:
            epoch_before = c.cluster()["epoch"]
        assert sts.terminate(1) == 0          # SIGTERM: a clean stop, not death by signal
        assert "node dynamopy-1 stopped" in sts.log_tail(1)   # drained, synced, closed
        sts.start(1)
        sts.wait_ready([1], timeout_s=90)
        with Client(sts.url(1), token=token) as c1:
            assert c1.node()["id"] == "dynamopy-1"
            assert _members(c1)["dynamopy-1"]["state"] == "normal"
            assert [e for e in c1.log(epoch_before) if e.get("id") == "dynamopy-1"] == []
            assert c1.cluster()["epoch"] == epoch_before
            for i in range(30, 40):
                written[f"k8s/{i}"] = f"after-restart-{i}".encode()
                c1.put(f"k8s/{i}", written[f"k8s/{i}"])
        _check_all(sts, token, range(4), written)
        # the API token from the Secret is in force
        with Client(sts.url(2)) as anonymous:
            with pytest.raises(DynamoError) as e:
                anonymous.get("k8s/0")
            assert e.value.status == 401
    finally:
        sts.stop()
