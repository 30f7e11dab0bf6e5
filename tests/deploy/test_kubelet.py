"""The emulation's own rules (kubelet.py): $(VAR) expansion as the kubelet does it, and the
pod environment built from a template, so the emulated StatefulSet runs what a cluster would."""

import pytest

from tests.deploy.kubelet import EmulatedStatefulSet, expand


def test_expand_follows_the_kubelet_rules():
    env = {"A": "x", "B": "$(A)"}
    assert expand("$(A)-$(A)", env) == "x-x"
    assert expand("$(MISSING)", env) == "$(MISSING)"       # undefined: left as written
    assert expand("$$(A)", env) == "$(A)"                  # $$ escapes
    assert expand("$(B)", env) == "$(A)"                   # values are not re-expanded
    assert expand("cost $5", env) == "cost $5"


def _objects(env, env_from=None):
    container = {"name": "c", "command": ["dynamopy", "serve"], "ports": [
        {"name": "http", "containerPort": 8080}], "env": env, "volumeMounts": [
        {"name": "data", "mountPath": "/var/lib/d"}]}
    if env_from:
        container["envFrom"] = env_from
    return [
        {"kind": "StatefulSet", "metadata": {"name": "s", "namespace": "ns"},
         "spec": {"serviceName": "h", "template": {"spec": {"containers": [container]}}}},
        {"kind": "Service", "metadata": {"name": "h"}, "spec": {"clusterIP": "None"}},
        {"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"N": "3"}},
    ]


def test_environment_is_built_in_order_with_downward_api_and_secrets(tmp_path):
    env = [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "LATE_REF", "value": "$(LATER)"},
           {"name": "LATER", "value": "$(POD).$(N)"},
           {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}},
           {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "no",
                                                          "optional": True}}},
           {"name": "DIR", "value": "/var/lib/d/sub"}]
    sts = EmulatedStatefulSet(_objects(env, [{"configMapRef": {"name": "cm"}}]), tmp_path,
                              {"sec": {"k": "v"}}, 2)
    got = sts.environment(1)
    assert got["LATE_REF"] == "$(LATER)"      # defined after: not expanded
    assert got["LATER"] == "s-1.3" and got["S"] == "v" and "OPT" not in got
    assert sts.process_env(1)["DIR"] == str(sts.data_dir(1) / "sub")
    assert sts.dns_name(1) == "s-1.h.ns.svc.cluster.local"
    missing = EmulatedStatefulSet(_objects(env), tmp_path, {}, 1)
    with pytest.raises(AssertionError):
        missing.environment(0)
