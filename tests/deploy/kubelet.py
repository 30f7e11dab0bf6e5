"""Run a rendered StatefulSet's pods as local processes, the way the kubelet would run them.

``EmulatedStatefulSet(objects, root, secrets)`` takes the objects ``kubectl kustomize``
renders and starts pod ``k`` as ``<command> <args>`` of the pod template's (only) container,
with exactly its environment:

* ``envFrom`` ConfigMaps come from the rendered objects; ``secretKeyRef`` values from the
  ``secrets`` the test passes (``{secret name: {key: value}}``; an ``optional`` key that is
  absent is left out, as the kubelet does); ``fieldRef`` ``metadata.name`` /
  ``metadata.namespace`` are the pod's name (``<set>-<k>``) and the set's namespace;
* ``$(VAR)`` references in env values, command and args are expanded as the kubelet does:
  only variables defined before (``envFrom`` first, then ``env`` in order), ``$$`` is a
  literal ``$``, an undefined reference stays as written.

What stands in for the pod network and volumes (the only departures from the template):

* each pod has its own loopback address (``ips[k]``, e.g. 127.77.3.1, .2, ...), and the
  listen address ``DYNAMOPY_HOST=0.0.0.0`` (all of the pod's interfaces) becomes that
  address; the ports stay the template's, shared by every pod as on Kubernetes;
* cluster DNS: ``<set>-<k>.<headless service>.<namespace>.svc.cluster.local`` maps to
  ``ips[k]`` through ``hosts_shim/sitecustomize.py`` (``DYNAMOPY_EMULATED_HOSTS``);
* the volume claim ``data`` mounted at its ``mountPath`` becomes ``root/data-<set>-<k>``
  (a pod restarted keeps its directory, like its PersistentVolumeClaim); a ``secret`` volume
  becomes ``root/<volume>-<set>-<k>`` holding one file per key of that Secret; environment
  values under a mount path point into those directories instead.

Processes are started in their own session and stopped by PID (SIGTERM as the kubelet sends
after preStop, then SIGKILL); every wait is bounded.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import httpx

from dynamopy.launch import stop_processes
from tests.deploy.tools import one

SHIM = Path(__file__).resolve().parent / "hosts_shim"
CLUSTER_DOMAIN = "cluster.local"
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion (see the module docstring)."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _REF.sub(sub, text)


def _bindable(ip: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


class EmulatedStatefulSet:
    def __init__(self, objects: list[dict], root: Path, secrets: dict[str, dict[str, str]],
                 replicas_max: int = 4):
        self.objects = objects
        self.sts = one(objects, "StatefulSet")
        self.name = self.sts["metadata"]["name"]
        self.namespace = self.sts["metadata"].get("namespace", "default")
        self.headless = one(objects, "Service", self.sts["spec"]["serviceName"])
        assert self.headless["spec"]["clusterIP"] == "None"
        pod = self.sts["spec"]["template"]["spec"]
        (self.container,) = pod["containers"]
        self.root = Path(root)
        self.secrets = secrets
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.ips = self._pick_ips(replicas_max)
        self.procs: dict[int, subprocess.Popen] = {}
        self.logs: dict[int, object] = {}

    # ---- addresses ------------------------------------------------------------------
    def _pick_ips(self, count: int) -> list[str]:
        """A block of loopback addresses where every pod port is free."""
        rng = random.Random()
        for _ in range(20):
            a, b = rng.randrange(16, 250), rng.randrange(1, 250)
            ips = [f"127.{a}.{b}.{k + 1}" for k in range(count)]
            if all(_bindable(ip, p) for ip in ips for p in self.ports.values()):
                return ips
        raise RuntimeError(f"no loopback block with ports {self.ports} free")

    def pod_name(self, k: int) -> str:
        return f"{self.name}-{k}"

    def dns_name(self, k: int) -> str:
        return (f"{self.pod_name(k)}.{self.headless['metadata']['name']}.{self.namespace}"
                f".svc.{CLUSTER_DOMAIN}")

    def url(self, k: int, port: str = "http") -> str:
        scheme = self.container["readinessProbe"]["httpGet"].get("scheme", "HTTP").lower()
        return f"{scheme}://{self.ips[k]}:{self.ports[port]}"

    def data_dir(self, k: int) -> Path:
        return self.root / f"data-{self.pod_name(k)}"

    # ---- the pod's process ----------------------------------------------------------
    def environment(self, k: int) -> dict[str, str]:
        """The container's environment for pod ``k``, as the kubelet builds it."""
        env: dict[str, str] = {}
        for src in self.container.get("envFrom", []):
            ref = src["configMapRef"]["name"]
            env.update({key: str(v) for key, v in one(self.objects, "ConfigMap", ref)["data"].items()})
        fields = {"metadata.name": self.pod_name(k), "metadata.namespace": self.namespace}
        for e in self.container.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[e["name"]] = fields[vf["fieldRef"]["fieldPath"]]
            elif "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                value = self.secrets.get(ref["name"], {}).get(ref["key"])
                if value is None:
                    assert ref.get("optional"), f"secret {ref} missing and not optional"
                    continue
                env[e["name"]] = value
            else:
                raise AssertionError(f"env source not emulated: {e}")
        return env

    def command(self, k: int, env: dict[str, str]) -> list[str]:
        argv = [expand(a, env) for a in self.container["command"] + self.container.get("args", [])]
        exe = Path(sys.executable).parent / argv[0]   # the image's PATH: the installed venv
        return [str(exe) if exe.exists() else argv[0], *argv[1:]]

    def process_env(self, k: int) -> dict[str, str]:
        """The container environment with the emulation's stand-ins (module docstring)."""
        env = self.environment(k)
        local = self.mounts(k)
        for name, value in env.items():
            if value == "0.0.0.0" and name == "DYNAMOPY_HOST":
                env[name] = self.ips[k]
                continue
            for mount, directory in local.items():
                if value == mount or value.startswith(mount + "/"):
                    env[name] = str(directory) + value[len(mount):]
        hosts = ",".join(f"{self.dns_name(i)}={ip}" for i, ip in enumerate(self.ips))
        base = {key: os.environ[key] for key in ("PATH", "LANG", "HOME") if key in os.environ}
        return {**base, **env, "PYTHONPATH": str(SHIM), "DYNAMOPY_EMULATED_HOSTS": hosts}

    def mounts(self, k: int) -> dict[str, Path]:
        """mountPath -> local directory for the data claim and secret volumes of pod k."""
        volumes = {v["name"]: v for v in self.sts["spec"]["template"]["spec"].get("volumes", [])}
        out = {}
        for m in self.container["volumeMounts"]:
            vol = volumes.get(m["name"], {})
            if m["name"] == "data":
                out[m["mountPath"]] = self.data_dir(k)
            elif "secret" in vol:
                d = self.root / f"{m['name']}-{self.pod_name(k)}"
                d.mkdir(parents=True, exist_ok=True)
                for key, value in self.secrets[vol["secret"]["secretName"]].items():
                    (d / key).write_text(value)
                out[m["mountPath"]] = d
        return out

    def start(self, k: int) -> None:
        assert k not in self.procs or self.procs[k].poll() is not None, f"pod {k} running"
        self.data_dir(k).mkdir(parents=True, exist_ok=True)
        env = self.process_env(k)
        log = open(self.root / f"{self.pod_name(k)}.log", "ab")
        self.procs[k] = subprocess.Popen(self.command(k, self.environment(k)), env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.root)
        self.logs[k] = log

    def terminate(self, k: int, timeout_s: float = 30.0) -> int:
        """SIGTERM (what the kubelet sends after preStop), SIGKILL after the grace period."""
        p = self.procs[k]
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        return p.returncode

    def stop(self) -> None:
        stop_processes(list(self.procs.values()), timeout_s=15)
        for f in self.logs.values():
            f.close()

    # ---- probes ---------------------------------------------------------------------
    def probe(self, k: int, kind: str) -> bool:
        """One run of the container's ``kind`` probe (httpGet), from outside the pod."""
        get = self.container[kind]["httpGet"]
        port = get["port"]
        port = self.ports[port] if isinstance(port, str) else port
        scheme = get.get("scheme", "HTTP").lower()
        try:
            resp = httpx.get(f"{scheme}://{self.ips[k]}:{port}{get['path']}", timeout=2.0,
                             verify=False)
        except httpx.HTTPError:
            return False
        return 200 <= resp.status_code < 400

    def wait_ready(self, pods, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(pods)
        while pending:
            for k in list(pending):
                p = self.procs[k]
                if p.poll() is not None:
                    raise RuntimeError(f"pod {k} exited with {p.returncode}:\n{self.log_tail(k)}")
                if self.probe(k, "startupProbe") and self.probe(k, "readinessProbe"):
                    pending.discard(k)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"pods {sorted(pending)} not ready after {timeout_s}s:\n"
                                   + "\n".join(self.log_tail(k) for k in pending))
            time.sleep(0.2)

    def log_tail(self, k: int, lines: int = 40) -> str:
        path = self.root / f"{self.pod_name(k)}.log"
        try:
            return f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cleanup_data(self) -> None:
        for k in self.procs:
            shutil.rmtree(self.data_dir(k), ignore_errors=True)
