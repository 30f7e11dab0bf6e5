"""How the suite is split across pytest-xdist workers (the README's test command runs
``-n auto``).

A file of tests that start real processes (``tests/integration``, ``tests/deploy``) is one unit
of work: its module-scoped clusters start once, and its tests run in order on one worker. Those
files go out first (xdist orders units by their number of tests, and every in-process test is a
unit of its own), so two of them run side by side, each waiting on its nodes while the other
uses the CPU. The in-process tests (``tests/unit``, ``tests/sim``: CPU-bound, no waiting) follow
one by one on whichever worker is free, so the run ends evenly. Test ports never collide across
workers (``tests/integration/cluster.py``), and the one-time installs (checkov, libfaketime) are
each made by one file. Without xdist (``-p no:xdist`` or ``-n 0``) nothing changes."""

from __future__ import annotations

import pytest

PROCESS_DIRS = ("tests/integration/", "tests/deploy/")


def scope_of(nodeid: str) -> str:
    """The unit of work of a test: its file if it starts processes, else the test alone."""
    path = nodeid.split("::", 1)[0]
    return path if path.startswith(PROCESS_DIRS) else nodeid


class _Scheduling:
    @pytest.hookimpl
    def pytest_xdist_make_scheduler(self, config, log):
        from xdist.scheduler import LoadScopeScheduling

        class ProcessFilesFirst(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return scope_of(nodeid)

        return ProcessFilesFirst(config, log)


def pytest_configure(config):
    # Registered only with xdist loaded: its hook is unknown to pytest otherwise.
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_Scheduling(), "dynamopy-test-scheduling")
