"""The trusted side's connection to the grading kernel: a sandboxed kernel, separate from the one that runs the
student's notebook, that holds only the graded code (see :mod:`~dlvision.grading.submission`).

Graders reach it through requests. A reply is accepted only if it answers the request that asked for it (a nonce
and the request's message id), only within the call's time limit and the submission's time budget, and only
as plain data within the size bounds. Everything else the kernel sends is dropped unread beyond its size. A call
that overruns is interrupted; a kernel that ignores the interrupt or dies is restarted with the graded code
loaded again.
"""
from __future__ import annotations

import glob
import json
import queue
import secrets
import shutil
import tempfile
import time
from typing import Callable

import zmq
from jupyter_client.blocking import BlockingKernelClient
from jupyter_core.utils import run_sync

from dlvision.grading import wire
from dlvision.grading.analysis import graded_builtins
from dlvision.grading.sandbox import MessageTooLarge, SandboxedKernelManager
from dlvision.grading.submission import GradedCode

KERNEL_SIDE = "__import__('dlvision.grading.kernel_side', fromlist=['serve'])"


class GraderError(RuntimeError):
    """A grader that cannot run as written (does not import, carries no points, calls a name no solution cell
    defines): the course's bug, which fails the submission loudly rather than scoring it 0."""


class StudentError(Exception):
    """The student's code raised, overran, crashed the kernel, or sent back something that is not plain data.

    ``error`` is the kernel's structured description (type, message, frames) when the student's code raised;
    the report turns it into words that carry nothing of the graders (see :mod:`~dlvision.grading.report`).
    """

    def __init__(self, message: str, error: dict | None = None):
        super().__init__(message)
        self.error = error


class GradingKernel:
    """A started grading kernel with the graded code loaded; ``request`` carries out one grader request."""

    def __init__(self, graded: GradedCode, manager_factory: Callable[[], SandboxedKernelManager], *,
                 call_timeout: float, budget: float, max_reply_bytes: int, startup_timeout: float = 60):
        self.graded = graded
        self.call_timeout = call_timeout
        self.max_reply_bytes = max_reply_bytes
        self.startup_timeout = startup_timeout
        self.load_failures: list[dict] = []
        self._deadline = None
        self._budget = budget
        self._workdir = tempfile.mkdtemp(prefix="dlvision-grading-")
        self.km = manager_factory()
        self.km.exec_lines = ["import dlvision.grading.kernel_side"]
        # No /proc (so no /proc/self/mem to rewrite the process through) unless CUDA's driver needs it.
        self.km.mount_proc = bool(glob.glob("/dev/nvidia*"))
        self.kc: BlockingKernelClient | None = None
        run_sync(self.km.start_kernel)(cwd=self._workdir)

    def ready(self) -> "GradingKernel":
        """Wait for the kernel, then start the submission's time budget and load the graded code."""
        self._connect()
        self._deadline = time.monotonic() + self._budget
        self._load()
        return self

    def reload(self, graded: GradedCode) -> None:
        """Replace the graded code (a fresh module in the same kernel) and restart the time budget."""
        self.graded = graded
        self._deadline = time.monotonic() + self._budget
        self._load()

    def _connect(self) -> None:
        context = zmq.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.km.max_message_bytes)
        # parent=km: "is the kernel alive" asks the process, not the heartbeat, which a loaded machine can miss.
        self.kc = BlockingKernelClient(context=context, parent=self.km, **self.km.get_connection_info(session=True))
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=self.startup_timeout)
        except RuntimeError as error:
            raise RuntimeError(f"the grading kernel did not start ({error}): {self.km.kernel_log()}") from None

    def _load(self) -> None:
        nonce = secrets.token_hex(16)
        spec = json.dumps({**self.graded.payload(), "builtins": graded_builtins(), "nonce": nonce})
        try:
            self.load_failures = self._exchange(f"{KERNEL_SIDE}.load({spec!r})", nonce, self.call_timeout * 2,
                                                reload=False) or []
        except StudentError as error:  # the kernel is left empty: every call then fails, and says why
            self.load_failures = [{"type": "builtins.TimeoutError", "frames": [],
                                   "message": f"defining your code (imports, classes, constants) {error}"}]

    def remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic()) if self._deadline else self.call_timeout

    def request(self, kind: str, name: str, args: tuple = (), kwargs: dict | None = None, *,
                timeout: float | None = None, **extra):
        """Carry out one request in the kernel and return its decoded result; raise StudentError if it fails."""
        limit = min(timeout or self.call_timeout, self.remaining())
        if limit <= 0:
            raise StudentError("the time budget for grading this submission ran out before this check "
                               "(earlier calls into your code took too long).")
        nonce = secrets.token_hex(16)
        request = wire.encode({"kind": kind, "name": name, "args": tuple(args), "kwargs": dict(kwargs or {}), **extra})
        return self._exchange(f"{KERNEL_SIDE}.serve({request!r}, {nonce!r})", nonce, limit)

    def _exchange(self, code: str, nonce: str, limit: float, reload: bool = True):
        msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False, stop_on_error=False)
        reply, finished = None, False
        deadline = time.monotonic() + limit
        while not finished:
            left = deadline - time.monotonic()
            if left <= 0:
                self._overran(msg_id, limit, reload)
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                if not run_sync(self.km.is_alive)():
                    self._restart(reload)
                    raise StudentError("the kernel died (os._exit, a crash, or the memory limit) and was "
                                       "restarted.") from None
                continue
            except (MessageTooLarge, ValueError):
                continue  # unreadable or oversized: dropped
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content", {})
            if kind == "display_data" and reply is None:
                candidate = content.get("data", {}).get(wire.REPLY_MIME)
                if isinstance(candidate, dict) and candidate.get("nonce") == nonce:
                    reply = candidate
            elif kind == "status" and content.get("execution_state") == "idle":
                finished = True
        self._drain_shell(msg_id)
        return self._result(reply)

    def _result(self, reply: dict | None):
        if reply is None:
            raise StudentError("no result came back from your code.")
        if not reply.get("ok") and "unreadable" in reply:
            kind = str(reply["unreadable"])
            shown = kind.removeprefix("builtins.") if kind.startswith("builtins.") and kind.count(".") == 1 else \
                "an object of a class defined in your code"
            raise StudentError(f"your code returned {shown}, which cannot be read back: return tensors, numbers, "
                               "strings, or lists, tuples and dicts of them.")
        if not reply.get("ok"):
            error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
            if error.get("type") == "dlvision.RequestError":  # the kernel side could not read the grader's request
                raise GraderError(f"a grader's request could not be read in the grading kernel: {error.get('message')}")
            raise StudentError("your code raised an error.", error)
        try:
            return wire.decode(reply.get("payload"), self.max_reply_bytes)
        except wire.WireError as error:
            raise StudentError(f"the result could not be read back ({error}). Return tensors, numbers, strings, "
                               "or lists, tuples and dicts of them.") from None

    def _overran(self, msg_id: str, limit: float, reload: bool) -> None:
        run_sync(self.km.interrupt_kernel)()
        grace = time.monotonic() + 3
        while time.monotonic() < grace:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except (queue.Empty, MessageTooLarge, ValueError):
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id and msg.get("msg_type") == "status" \
                    and msg.get("content", {}).get("execution_state") == "idle":
                raise StudentError(self._overrun_message(limit))
        self._restart(reload)
        raise StudentError(self._overrun_message(limit) + " It ignored the interrupt, so the kernel was restarted.")

    def _overrun_message(self, limit: float) -> str:
        if self.remaining() <= 0:
            return ("the time budget for grading this submission ran out during this check (earlier calls into "
                    "your code took too long).")
        return f"did not finish within {limit:.0f} s (an endless loop, or far too slow)."

    def _drain_shell(self, msg_id: str) -> None:
        while True:
            try:
                msg = self.kc.get_shell_msg(timeout=0.2)
            except (queue.Empty, MessageTooLarge, ValueError):
                return
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return

    def _restart(self, reload: bool = True) -> None:
        self.kc.stop_channels()
        run_sync(self.km.restart_kernel)(now=True)
        self._connect()
        if reload:
            self._load()

    def shutdown(self) -> None:
        try:
            if self.kc is not None:
                self.kc.stop_channels()
            run_sync(self.km.shutdown_kernel)(now=True)
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)
