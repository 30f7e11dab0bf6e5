"""Suite-wide set-up: the project's bytecode is compiled once, before any test runs.

Every integration test starts real ``dynamopy serve`` processes (about 220 in a run) and many
run the CLI. Where Python does not write bytecode (``PYTHONDONTWRITEBYTECODE``, as on the CI
machine), each of those processes compiled the project's ~27,000 lines again: about 0.3 s of
CPU per start. Compiling them once here lets every process load the ``.pyc`` files (Python
still reads bytecode when it does not write it); up-to-date files are skipped.
"""

from __future__ import annotations

import compileall
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("dynamopy", "ring", "loadgen")


def compile_project(root: str = ROOT) -> bool:
    """Compile the project's packages under ``root``; True when every file compiled."""
    ok = True
    for name in PACKAGES:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            ok = bool(compileall.compile_dir(path, quiet=1, workers=1)) and ok
    return ok


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller (or the only process): once
        compile_project()
