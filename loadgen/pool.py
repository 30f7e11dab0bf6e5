"""The driver processes (``loadgen.driver``), seen from the parent: started once, given one
phase at a time with one shared time window, read from by one thread each (so the parent
sees their live ticks while it runs the progress bar and the faults), stopped by PID."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

from dynamopy.launch import stop_processes


class DriverPool:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self._inbox: list[queue.Queue] = []
        self.ticks: list[dict] = []

    def start(self, setups: list[dict]) -> None:
        for setup in setups:
            # Own session: a Ctrl-C in the terminal reaches only us; we stop them by PID.
            proc = subprocess.Popen([sys.executable, "-m", "loadgen.driver"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    start_new_session=True)
            self.procs.append(proc)
            inbox: queue.Queue = queue.Queue()
            self._inbox.append(inbox)
            self.ticks.append({"ok": 0, "err": 0})
            threading.Thread(target=self._reader, args=(len(self.procs) - 1,),
                             daemon=True).start()
            self._send(proc, setup)
        self._expect("ready", 60.0)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _reader(self, i: int) -> None:
        for line in self.procs[i].stdout:
            msg = json.loads(line)
            if "tick" in msg:
                self.ticks[i] = msg["tick"]
            else:
                self._inbox[i].put(msg)
        self._inbox[i].put(None)  # the process ended

    @staticmethod
    def _send(proc: subprocess.Popen, obj: dict) -> None:
        proc.stdin.write(json.dumps(obj) + "\n")
        proc.stdin.flush()

    def _expect(self, field: str, timeout_s: float) -> list:
        out = []
        for i, inbox in enumerate(self._inbox):
            try:
                msg = inbox.get(timeout=timeout_s)
            except queue.Empty:
                raise RuntimeError(f"driver pid {self.procs[i].pid} sent nothing for "
                                   f"{timeout_s:.0f}s") from None
            if msg is None or field not in msg:
                raise RuntimeError(f"driver pid {self.procs[i].pid} exited "
                                   f"(code {self.procs[i].poll()})")
            out.append(msg[field])
        return out

    def phase(self, specs: list[dict]) -> None:
        """Hand each driver its part of the next phase; return when all are ready."""
        for i, (proc, spec) in enumerate(zip(self.procs, specs)):
            self.ticks[i] = {"ok": 0, "err": 0}
            self._send(proc, {"phase": spec})
        self._expect("ready", 60.0)

    def go(self, start: float, end: float) -> None:
        for proc in self.procs:
            self._send(proc, {"start": start, "end": end})

    def live(self) -> tuple[int, int]:
        """(ok, errors) measured so far in this phase, summed over drivers."""
        return sum(t["ok"] for t in self.ticks), sum(t["err"] for t in self.ticks)

    def results(self, timeout_s: float) -> list[dict]:
        return self._expect("result", timeout_s)

    def stop(self) -> None:
        for proc in self.procs:
            try:
                if proc.poll() is None:
                    self._send(proc, {"exit": True})
            except (BrokenPipeError, OSError):
                pass
        stop_processes(self.procs, timeout_s=5)
