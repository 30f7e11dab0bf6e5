"""A store whose synced ``apply`` is slow, for the unit tests of the group committer's
slow-batch log line and of the script that reads it (benchlib/sync_stalls.py)."""

import time


class SlowApply:
    """Makes ``store.apply`` sleep ``seconds`` before each call while ``on`` (an instance
    attribute shadows the method; the store's own apply then runs as usual)."""

    def __init__(self, store, seconds: float, on: bool = True):
        self.seconds, self.on = seconds, on
        real_apply = store.apply

        def apply(*args, **kwargs):
            if self.on:
                time.sleep(self.seconds)
            return real_apply(*args, **kwargs)

        store.apply = apply
