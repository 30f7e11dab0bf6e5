"""The Kubernetes manifests (k8s/) and the image file (Dockerfile), checked statically.

No cluster and no Docker engine are needed: the kustomize base and overlay render with
kubectl's embedded kustomize, validate against the Kubernetes 1.30 schemas in strict mode
(kubernetes-validate ships them), pass checkov (each skip carries a written reason in the
manifest) and hadolint, and state what the README's "Kubernetes" section says they do.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess

import kubernetes_validate
import pytest

from tests.deploy import tools
from tests.deploy.tools import K8S, REPO, one, render

K8S_VERSION = "1.30.0"
OVERLAY = K8S / "overlays" / "five-nodes"
TLS_OVERLAY = K8S / "overlays" / "tls"
ALL = pytest.mark.parametrize("path", [K8S, OVERLAY, TLS_OVERLAY], ids=["base", "five-nodes", "tls"])


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render(K8S)


@pytest.fixture(scope="module")
def five() -> list[dict]:
    return render(OVERLAY)


def _container(objects: list[dict]) -> dict:
    return one(objects, "StatefulSet", "dynamopy")["spec"]["template"]["spec"]["containers"][0]


def _env(container: dict) -> dict:
    return {e["name"]: e for e in container["env"]}


def test_kustomize_root_is_the_base(base):
    assert base == render(K8S / "base")
    assert sorted(o["kind"] for o in base) == sorted([
        "Namespace", "ServiceAccount", "ConfigMap", "Service", "Service", "StatefulSet",
        "PodDisruptionBudget", "NetworkPolicy"])
    # No secret is committed: the Secret is created by the operator (README).
    assert not [o for o in base if o["kind"] == "Secret"]


def test_statefulset_membership_wiring(base):
    sts = one(base, "StatefulSet", "dynamopy")
    headless = one(base, "Service", "dynamopy-peers")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert sts["spec"]["serviceName"] == "dynamopy-peers"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["replicas"] == 3
    c = _container(base)
    env = _env(c)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["DYNAMOPY_NODE_ID"]["value"] == "$(POD_NAME)"
    assert env["DYNAMOPY_HOST"]["value"] == "0.0.0.0"
    assert env["DYNAMOPY_ADVERTISE_PEER"]["value"].startswith("$(POD_NAME).$(PEER_DOMAIN):")
    assert env["PEER_DOMAIN"]["value"].startswith("dynamopy-peers.$(POD_NAMESPACE).svc.")
    seeds = env["DYNAMOPY_SEEDS"]["value"].split(",")
    assert [s.split("://")[1].split(".")[0] for s in seeds] == ["dynamopy-0", "dynamopy-1",
                                                              "dynamopy-2"]
    assert "DYNAMOPY_JOIN" not in env  # pods beyond the seeds join through them by themselves
    assert env["DYNAMOPY_CLUSTER_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "dynamopy-secrets"
    # envFrom names the generated ConfigMap (with its content hash) that holds N/R/W etc.
    cm_name = c["envFrom"][0]["configMapRef"]["name"]
    cm = one(base, "ConfigMap", cm_name)
    assert {"DYNAMOPY_N", "DYNAMOPY_R", "DYNAMOPY_W", "DYNAMOPY_HINT_WINDOW_S",
            "DYNAMOPY_HINT_MAX_BYTES", "DYNAMOPY_TRANSFER_MAX_BYTES_S",
            "DYNAMOPY_ANTI_ENTROPY_INTERVAL_S", "DYNAMOPY_ANTI_ENTROPY_RATE",
            "DYNAMOPY_TOMBSTONE_GRACE_S"} <= set(cm["data"])
    claims = sts["spec"]["volumeClaimTemplates"]
    assert [v["metadata"]["name"] for v in claims] == ["data"]
    assert {"name": "data", "mountPath": env["DYNAMOPY_DATA_DIR"]["value"]} in c["volumeMounts"]


def test_statefulset_probes_security_and_shutdown(base):
    sts = one(base, "StatefulSet", "dynamopy")
    pod = sts["spec"]["template"]["spec"]
    c = _container(base)
    assert c["startupProbe"]["httpGet"]["path"] == "/ready"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and c["resources"]["limits"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    # writable: the data volume and a tmp emptyDir, nothing else
    assert sorted(m["mountPath"] for m in c["volumeMounts"]) == ["/tmp", "/var/lib/dynamopy"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    spread = pod["topologySpreadConstraints"]
    assert "kubernetes.io/hostname" in [t["topologyKey"] for t in spread]
    assert pod["affinity"]["podAntiAffinity"]
    # preStop waits for the endpoints to drop the pod; the grace period covers it plus
    # uvicorn's 5 s graceful shutdown and the final sync.
    assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(c["lifecycle"]["preStop"]["exec"]["command"][1]) + 15
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics"
    assert ann["prometheus.io/port"] == str(next(p["containerPort"] for p in c["ports"]
                                                 if p["name"] == "http"))


def test_services_pdb_and_network_policy(base):
    client = one(base, "Service", "dynamopy")
    assert client["spec"].get("clusterIP") != "None"
    assert [p["targetPort"] for p in client["spec"]["ports"]] == ["http"]
    pdb = one(base, "PodDisruptionBudget", "dynamopy")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = one(base, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    np = one(base, "NetworkPolicy", "dynamopy")
    rules = np["spec"]["ingress"]
    peer_rules = [r for r in rules if any(p["port"] == "peer" for p in r.get("ports", []))]
    assert len(peer_rules) == 1
    (sources,) = [r["from"] for r in peer_rules]
    assert sources == [{"podSelector": {"matchLabels": np["spec"]["podSelector"]["matchLabels"]}}]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # every other rule admits the HTTP port only
    assert all([p["port"] for p in r["ports"]] == ["http"] for r in rules if r not in peer_rules)


def test_overlay_changes_size_and_settings_without_editing_the_base(base, five):
    assert one(five, "StatefulSet")["spec"]["replicas"] == 5
    cm_base = one(base, "ConfigMap")["data"]
    cm_five = one(five, "ConfigMap")["data"]
    assert cm_five["DYNAMOPY_HINT_WINDOW_S"] != cm_base["DYNAMOPY_HINT_WINDOW_S"]
    assert cm_five["DYNAMOPY_N"] == cm_base["DYNAMOPY_N"]  # merged, not replaced
    # the seeds stay the three first ordinals
    assert _env(_container(five))["DYNAMOPY_SEEDS"] == _env(_container(base))["DYNAMOPY_SEEDS"]


@ALL
def test_manifests_validate_against_kubernetes_1_30_strict(path):
    objects = render(path)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    # The check can fail: a misspelt field is refused in strict mode.
    bad = copy.deepcopy(one(objects, "StatefulSet"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


@pytest.mark.timeout(1200)   # the first run installs checkov into its own venv
def test_checkov_reports_no_failed_check(tmp_path):
    exe = tools.checkov()
    files = []
    for name, path in (("base", K8S), ("five-nodes", OVERLAY), ("tls", TLS_OVERLAY)):
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(tools.render_text(path))
    # one run for all three: checkov's start-up is most of its time
    out = subprocess.run(
        [exe, *(a for f in files for a in ("-f", str(f))), "--framework", "kubernetes",
         "--skip-download", "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=900,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BC_SKIP_MAPPING": "TRUE",
             "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    results = [c for r in reports for kind in ("passed_checks", "failed_checks", "skipped_checks")
               for c in r["results"][kind]]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for r in reports
              for c in r["results"]["failed_checks"]]
    assert failed == [], out.stdout[-3000:]
    for f in files:   # it really checked every rendering
        assert sum(1 for c in results if c["file_path"].endswith(f.name)) > 50, f.name
    for r in reports:
        for c in r["results"]["skipped_checks"]:
            assert len((c.get("check_result") or {}).get("suppress_comment", "")) > 20, c


def test_hadolint_reports_nothing_on_the_image_file(tmp_path):
    exe = tools.hadolint()
    out = subprocess.run([exe, "--no-color", str(REPO / "Dockerfile")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    out = subprocess.run([exe, "--no-color", str(bad)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "DL3008" in out.stdout  # the linter does run


def test_tls_component_wires_the_secret_into_both_ports():
    objects = render(TLS_OVERLAY)
    pod = one(objects, "StatefulSet")["spec"]["template"]
    c = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    (vol,) = [v for v in pod["spec"]["volumes"] if v["name"] == "tls"]
    assert vol["secret"]["secretName"] == "dynamopy-tls"
    (mount,) = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == "tls"]
    # cert-manager's key names
    assert env["DYNAMOPY_TLS_CERT"] == f"{mount}/tls.crt"
    assert env["DYNAMOPY_TLS_KEY"] == f"{mount}/tls.key"
    assert env["DYNAMOPY_TLS_CA"] == f"{mount}/ca.crt"
    assert env["URL_SCHEME"] == "https"
    assert env["DYNAMOPY_CA"] == env["DYNAMOPY_TLS_CA"]   # the CLI in a pod trusts the CA
    names = [e["name"] for e in c["env"]]
    assert names.index("URL_SCHEME") < names.index("DYNAMOPY_ADVERTISE_URL")  # $(VAR) order
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["scheme"] == "HTTPS"
    assert pod["metadata"]["annotations"]["prometheus.io/scheme"] == "https"


# ---- the image file ---------------------------------------------------------------------

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = (REPO / "Dockerfile").read_text()
    lines, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        buf += (" " if buf else "") + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            lines.append(buf)
            buf = ""
    stages: list[list[tuple[str, str]]] = [[]]
    for line in lines:
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append([])
        stages[-1].append((instr, args.strip()))
    return stages[1:]


def _exec_form(stage, instr) -> list[str] | None:
    found = [a for i, a in stage if i == instr]
    return json.loads(found[-1]) if found else None


def test_image_file_entrypoint_agrees_with_the_statefulset(base):
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage build"
    final = stages[-1]
    c = _container(base)
    # Kubernetes: `command` replaces ENTRYPOINT, `args` replaces CMD.
    assert c["command"] == _exec_form(final, "ENTRYPOINT") == ["dynamopy", "serve"]
    assert c.get("args") == _exec_form(final, "CMD")
    # ports, user and data dir agree too
    exposed = sorted(int(p) for i, a in final if i == "EXPOSE" for p in a.split())
    assert exposed == sorted(p["containerPort"] for p in c["ports"])
    (user,) = [a for i, a in final if i == "USER"]
    uid = int(user.split(":")[0])
    assert uid != 0 and uid == one(base, "StatefulSet")["spec"]["template"]["spec"][
        "securityContext"]["runAsUser"]
    image_env = " ".join(a for i, a in final if i == "ENV")
    env = _env(c)
    for name in ("DYNAMOPY_PORT", "DYNAMOPY_PEER_PORT", "DYNAMOPY_DATA_DIR"):
        assert f"{name}={env[name]['value']}" in image_env


def test_image_file_final_stage_is_slim_and_without_healthcheck():
    stages = dockerfile_stages()
    final = stages[-1]
    assert not any(i == "HEALTHCHECK" for s in stages for i, _ in s)
    final_text = " ".join(a for _, a in final)
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in final_text, f"{tool} in the final image"
    assert any(i == "COPY" and a.startswith("--from=") for i, a in final)
    assert re.search(r"slim", (REPO / "Dockerfile").read_text())


def test_dockerignore_keeps_the_context_to_what_the_build_needs():
    rules = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert rules[0] == "*"  # deny by default: no .venv, .git, data dirs or secrets
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert {"pyproject.toml", "ring", "dynamopy"} <= allowed
