"""The rendered StatefulSet, run as local processes (see ``kubelet.py`` for what is emulated).

* Pods 0..2 start together from the pod template (podManagementPolicy Parallel) and bootstrap
  the cluster as its seeds; pods 3 and 4, scaled up together from the same template, join by
  themselves (one change at a time) and become normal; pod 1, restarted on its volume, comes
  back as the same member without a join.
* The README's operations: a scale-down without a leave leaves the member in the ring (down);
  a lost volume, and its repair (remove, then restart the pod); a safe scale-down (leave, then
  scale).

Data written before each step is readable after it.
"""

from __future__ import annotations

import secrets
import shutil
import time

import httpx
import pytest

from dynamopy.client import Client, DynamoError
from tests.deploy.kubelet import EmulatedStatefulSet
from tests.deploy.tools import K8S, render
from tests.integration.cluster import not_yet

pytestmark = pytest.mark.integration


def _wait(predicate, what: str, timeout_s: float = 60.0):
    """Poll until ``predicate()`` is truthy and return it; only "not yet" errors (a pod not
    answering, a 503) are retried, any other error surfaces at once (see ``not_yet``)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (DynamoError, httpx.HTTPError) as e:
            if not not_yet(e):
                raise
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


def _statefulset(tmp_path, replicas_max: int) -> tuple[EmulatedStatefulSet, str]:
    token = secrets.token_hex(16)
    sts = EmulatedStatefulSet(render(K8S), tmp_path, {"dynamopy-secrets": {
        "cluster-secret": secrets.token_hex(32), "api-token": token}}, replicas_max)
    return sts, token


def _form(sts: EmulatedStatefulSet, token: str, written: dict[str, bytes], count: int) -> None:
    for k in range(3):
        sts.start(k)
    sts.wait_ready(range(3), timeout_s=90)
    with Client(sts.url(0), token=token) as c:
        _wait(lambda: len(_members(c)) == 3, "3 members")
        for i in range(count):
            written[f"k8s/{i}"] = f"formed-{i}".encode()
            c.put(f"k8s/{i}", written[f"k8s/{i}"])


def _scale_up(sts: EmulatedStatefulSet, token: str, pods: list[int]) -> list[tuple]:
    """Start ``pods`` together; wait until each is ready and normal; the log's changes."""
    with Client(sts.url(0), token=token) as c:
        epoch_before = c.cluster()["epoch"]
        for k in pods:
            sts.start(k)
        sts.wait_ready(pods, timeout_s=90)
        for k in pods:
            _wait(lambda: _members(c).get(f"dynamopy-{k}", {}).get("state") == "normal",
                  f"dynamopy-{k} normal", timeout_s=90)
        return [(e["op"], e.get("id")) for e in c.log(epoch_before)]


def test_statefulset_forms_scales_up_and_restarts(tmp_path):
    sts, token = _statefulset(tmp_path, 5)
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

        # -- scale up to 5: pods 3 and 4 join by themselves and take their ranges ---------
        ops = _scale_up(sts, token, [3, 4])
        for k in (3, 4):
            assert ("join", f"dynamopy-{k}") in ops and ("finish_join", f"dynamopy-{k}") in ops
        # one change at a time: each join is finished before the next one starts
        changes = [op for op in ops if op[0] in ("join", "finish_join")]
        assert changes[0][1] == changes[1][1] and changes[2][1] == changes[3][1], changes
        with Client(sts.url(3), token=token) as c3:
            assert c3.node()["keys"] > 0   # it streamed data for the ranges it took over
            for i in range(20, 30):
                written[f"k8s/{i}"] = f"after-scale-{i}".encode()
                c3.put(f"k8s/{i}", written[f"k8s/{i}"])
        _check_all(sts, token, range(5), written)

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
        _check_all(sts, token, range(5), written)
        # the API token from the Secret is in force
        with Client(sts.url(2)) as anonymous:
            with pytest.raises(DynamoError) as e:
                anonymous.get("k8s/0")
            assert e.value.status == 401
    finally:
        sts.stop()


def _replicated_here(c: Client, member: str, written: dict[str, bytes]) -> list[str]:
    return [k for k in written if member in c.preference_list(k)]


def test_statefulset_scale_down_and_lost_volume(tmp_path):
    sts, token = _statefulset(tmp_path, 4)
    written: dict[str, bytes] = {}
    try:
        _form(sts, token, written, 30)
        _scale_up(sts, token, [3])
        c = Client(sts.url(0), token=token, timeout_s=10.0)

        # -- scale-down without a leave: still a member, seen down; writes go on with hints
        assert sts.terminate(3) == 0
        _wait(lambda: _members(c)["dynamopy-3"]["alive"] is False, "dynamopy-3 seen down")
        assert _members(c)["dynamopy-3"]["state"] == "normal"
        for i in range(30, 40):
            written[f"k8s/{i}"] = f"while-down-{i}".encode()
            c.put(f"k8s/{i}", written[f"k8s/{i}"])
        _check_all(sts, token, range(3), written)
        # scaled back up, it returns on its retained volume and gets its hints
        sts.start(3)
        sts.wait_ready([3])
        c3 = Client(sts.url(3), token=token, timeout_s=10.0)
        mine = _replicated_here(c, "dynamopy-3", written)
        _wait(lambda: all(c3.node_record(k) for k in mine), "hints handed back to dynamopy-3")

        # -- lost volume: the pod comes back by itself as a replacement (issue 14): the old
        # incarnation is retired, the pod joins again and streams its ranges back ---------
        assert sts.terminate(3) == 0
        shutil.rmtree(sts.data_dir(3))
        sts.start(3)
        _wait(lambda: ("replace", "dynamopy-3") in [(e["op"], e.get("id")) for e in c.log()],
              "dynamopy-3 announced itself as a replacement")
        sts.wait_ready([3])
        _wait(lambda: _members(c).get("dynamopy-3", {}).get("state") == "normal"
              and c.cluster()["change"] is None, "dynamopy-3 back as a normal member")
        mine = _replicated_here(c, "dynamopy-3", written)
        assert mine and all(c3.node_record(k) for k in mine)
        _check_all(sts, token, range(4), written)

        # -- safe scale-down: leave, wait until it has left, then stop the pod ---------------
        c.leave("dynamopy-3")
        _wait(lambda: "dynamopy-3" not in _members(c), "dynamopy-3 left", timeout_s=90)
        assert sts.terminate(3) == 0
        assert all(m["alive"] for m in _members(c).values())
        _check_all(sts, token, range(3), written)
        c.close()
        c3.close()
    finally:
        sts.stop()


def test_statefulset_with_the_tls_component(tmp_path):
    """overlays/tls: the pods read tls.crt/tls.key/ca.crt from the Secret `dynamopy-tls`
    (cert-manager's names), serve HTTPS, bootstrap over HTTPS through the seeds' DNS names
    and talk mutual TLS; one wildcard certificate for the headless Service names them all."""
    from tests.integration.certs import CA

    token = secrets.token_hex(16)
    sts = EmulatedStatefulSet(render(K8S / "overlays" / "tls"), tmp_path, {}, 3)
    ca = CA("dynamopy-ca", tmp_path / "pki")
    # the emulation's stand-in: the pods' loopback addresses as IP names, for the test's client
    crt, key = ca.issue("dynamopy-tls", [f"*.dynamopy-peers.{sts.namespace}.svc.cluster.local"],
                        ips=tuple(sts.ips))
    sts.secrets.update({
        "dynamopy-secrets": {"cluster-secret": secrets.token_hex(32), "api-token": token},
        "dynamopy-tls": {"tls.crt": open(crt).read(), "tls.key": open(key).read(),
                         "ca.crt": ca.cert_path.read_text()}})
    assert sts.url(0).startswith("https://")
    try:
        for k in range(3):
            sts.start(k)
        sts.wait_ready(range(3), timeout_s=90)
        with Client(sts.url(0), token=token, ca=str(ca.cert_path)) as c:
            members = _wait(lambda: len(_members(c)) == 3 and _members(c), "3 members")
            assert members["dynamopy-1"]["url"] == f"https://{sts.dns_name(1)}:8080"
            c.put("k8s/tls", b"over tls", w=3)
        with Client(sts.url(2), token=token, ca=str(ca.cert_path)) as c:
            assert c.get("k8s/tls", r=3).value == b"over tls"
        with Client(sts.url(2), token=token) as c:     # the system CAs do not know this one
            with pytest.raises(DynamoError):
                c.get("k8s/tls")
        with Client(sts.url(2), ca=str(ca.cert_path)) as c:   # the API token still applies
            with pytest.raises(DynamoError) as e:
                c.get("k8s/tls")
            assert e.value.status == 401
    finally:
        sts.stop()
