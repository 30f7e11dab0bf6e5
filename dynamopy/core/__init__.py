"""Pure decision logic: no I/O, no clock, no global random.

Everything here is a function or a small state machine over plain values, so the
simulator and the unit tests can drive it directly. Imports allowed: the standard
library (no asyncio, socket, time, random at module level), ``ring``, and each other.
"""
