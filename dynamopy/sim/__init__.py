"""Deterministic simulator: many nodes' real logic in one process, a virtual clock, an
in-memory network with seeded faults, and separate invariant checkers.

``run_metalog(seed, ...)`` runs the Multi-Paxos metadata log; ``python -m dynamopy.sim``
replays one seed or sweeps a range.

The in-memory implementations of the node's seams live here too, for in-process tests and
the whole-system simulator: ``transport`` (``MemoryNetwork``), ``storage`` (``MemoryDisk``:
loses what was not synced on a crash), ``clock`` (``VirtualTimeLoop``, ``NodeClock``), and
``inprocess.InProcessCluster`` that builds production ``Node`` objects from them.
"""

from .clock import VirtualClock
from .metalog_run import SimFailure, SimParams, SimResult, run_metalog
from .network import NetConfig, Network

__all__ = ["NetConfig", "Network", "SimFailure", "SimParams", "SimResult", "VirtualClock", "run_metalog"]
