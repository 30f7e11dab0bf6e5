"""Review finding (session 8, review8): ``Store.close()`` while another thread walks a
``Store.scan`` iterator crashes the process (plyvel frees the LevelDB iterator and the DB
under the reading thread: SIGSEGV).

Since e482626 a tombstone purge pass reads its chunks in an executor thread. A stopping node
cancels its tasks and then closes the store; the cancelled pass used to end at once while its
thread read on. The node side is fixed (``AntiEntropy._blocking`` waits for the thread before
a cancelled call ends; regression test ``tests/unit/test_anti_entropy.py::
test_a_pass_cancelled_mid_read_ends_only_once_its_store_read_is_done``). The store side is
fixed too: ``Store.close`` waits for reads in progress and refuses later ones (regression test
``tests/unit/test_store_close_fence.py``). This repro closes a store under a reading thread a
few hundred times in a child process and expects the child to survive (it crashed on main
before the fix, every run). A stress run by hand, too slow for the suite (5-20 s):
``python -m pytest -q tests/repro/repro_store_close_under_scan.py``.
"""

import subprocess
import sys


CHILD = r"""
import random, shutil, sys, tempfile, threading, time
from dynamopy.storage.store import Store
from dynamopy.core.records import Record
d = tempfile.mkdtemp()
s = Store(d + "/db")
s.apply([(random.randrange(2**32), f"k{i}".encode(), Record(version=i + 1, value=b"v" * 50))
         for i in range(20000)], sync=False)
s.close()
for trial in range(300):
    s = Store(d + "/db")
    def read():
        try:
            while True:
                for _ in s.scan(0, 2**32):
                    pass
        except Exception:
            pass    # a clean error once closed is fine; a crash is not
    t = threading.Thread(target=read)
    t.start()
    time.sleep(random.uniform(0, 0.005))
    s.close()
    t.join()
shutil.rmtree(d)
"""


def test_closing_a_store_while_another_thread_scans_it_does_not_crash():
    child = subprocess.run([sys.executable, "-c", CHILD], timeout=120, capture_output=True)
    assert child.returncode == 0, f"child exited {child.returncode}: {child.stderr[-300:]!r}"
