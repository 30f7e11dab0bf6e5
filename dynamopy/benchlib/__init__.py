"""Helpers for ``python -m dynamopy.bench``: the driver process, the local cluster it may start,
CPU sampling from /proc, server metrics diffs and the report. Nothing here is used by a node."""
