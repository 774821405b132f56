"""Process control: every program the harness starts goes through a Runner.

Each child gets a process group of its own, so that a timeout or Ctrl-C stops it
together with whatever it started (hyperfine's runs, a demo's children, a server's
workers). The Runner also adds up the wall time during which a child of it was
running, from which the driver reports its own overhead. Nothing here reads data.
"""

import os
import re
import select
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass

TIMED_OUT = 124  # the status of a command killed after its timeout, as timeout(1) says


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM: the run stops at once and exits 130."""


@dataclass
class Result:
    argv: list
    rc: int
    out: str
    err: str
    wall: float


def stop_group(pgid, first=signal.SIGINT, grace=1.0, proc=None):
    """Send `first` to a process group, then SIGKILL to what is left after grace s.
    proc, the group's leader, is reaped as soon as it exits."""
    try:
        os.killpg(pgid, first)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if proc is not None:
            proc.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Runner:
    def __init__(self):
        self.child_wall = 0.0  # seconds during which at least one child ran
        self._groups = {}  # pgid -> Popen, still running
        self._depth = 0
        self._since = 0.0

    def install_signals(self):
        """SIGINT and SIGTERM raise Interrupted in the main thread, wherever it is."""

        def handler(signum, frame):
            raise Interrupted(signum)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def stop_all(self):
        """Stop every running child's process group (Ctrl-C: within about 1 s)."""
        for pgid, p in list(self._groups.items()):
            stop_group(pgid, proc=p)
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            self._groups.pop(pgid, None)

    @contextmanager
    def _timed(self):
        # the union of the children's lifetimes: nested calls are counted once
        if self._depth == 0:
            self._since = time.monotonic()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.child_wall += time.monotonic() - self._since

    def start(self, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw):
        p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, process_group=0, text=True, **kw
        )
        self._groups[p.pid] = p
        return p

    def run(self, argv, timeout=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE, interrupt_after=None):
        """Run argv to its end (or kill its group after timeout s: status 124).
        stdout/stderr: PIPE (returned as text) or an open file. interrupt_after:
        send SIGINT to the program itself after that many seconds (wrk then ends
        its run and reports it, as at the end of its -d)."""
        t0 = time.monotonic()
        with self._timed():
            try:
                p = self.start(argv, stdout=stdout, stderr=stderr)
            except OSError as e:
                return Result(list(argv), 127, "", f"{argv[0]}: {e.strerror}", 0.0)
            try:
                if interrupt_after is not None:
                    try:
                        out, err = p.communicate(timeout=interrupt_after)
                    except subprocess.TimeoutExpired:
                        p.send_signal(signal.SIGINT)
                        left = None if timeout is None else max(timeout - interrupt_after, 0.1)
                        out, err = p.communicate(timeout=left)
                else:
                    out, err = p.communicate(timeout=timeout)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                stop_group(p.pid, signal.SIGTERM, grace=5.0, proc=p)
                out, err = p.communicate()
                rc = TIMED_OUT
            except BaseException:
                stop_group(p.pid, proc=p)
                p.wait()
                raise
            finally:
                self._groups.pop(p.pid, None)
        return Result(list(argv), rc, out or "", err or "", time.monotonic() - t0)


class ServiceError(Exception):
    pass


class Service:
    """A server run for the length of a `with` block, in its own process group.

    It must print `listening HOST:PORT` as its first line; the block starts once a
    TCP connection to it succeeds. Leaving the block (normally, on an error or on
    Ctrl-C) sends SIGTERM to the group, waits up to 2 s, then kills what is left;
    what the server printed after its first line is then in `tail` (a server
    prints its counts there). The `service` experiment kind runs wrk inside it
    (bench/harness/experiments.py)."""

    LISTENING = re.compile(r"listening (\d{1,3}(?:\.\d{1,3}){3}):(\d+)")

    def __init__(self, runner, argv, ready_timeout=5.0, stop_grace=2.0):
        self.runner, self.argv = runner, list(argv)
        self.ready_timeout, self.stop_grace = ready_timeout, stop_grace
        self.host, self.port, self.proc = None, None, None
        self.tail = ""

    def __enter__(self):
        self._cm = self.runner._timed()
        self._cm.__enter__()
        try:
            self.proc = self.runner.start(self.argv, stderr=subprocess.DEVNULL)
            self._await_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _await_ready(self):
        end = time.monotonic() + self.ready_timeout
        ready, _, _ = select.select([self.proc.stdout], [], [], self.ready_timeout)
        line = self.proc.stdout.readline() if ready else ""
        m = self.LISTENING.search(line)
        if not m:
            raise ServiceError(f"{self.argv[0]}: first line was {line.strip()!r}, not 'listening HOST:PORT'")
        self.host, self.port = m.group(1), int(m.group(2))
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise ServiceError(f"{self.argv[0]}: no connection to {self.host}:{self.port}") from None
                time.sleep(0.02)

    def __exit__(self, *exc):
        try:
            if self.proc is not None:
                stop_group(self.proc.pid, signal.SIGTERM, grace=self.stop_grace, proc=self.proc)
                self.proc.wait()
                try:
                    self.tail = self.proc.stdout.read()
                except (OSError, ValueError):
                    self.tail = ""
                self.proc.stdout.close()
                self.runner._groups.pop(self.proc.pid, None)
        finally:
            self._cm.__exit__(None, None, None)
        return False
