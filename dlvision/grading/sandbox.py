"""The student kernel's sandbox: a bubblewrap command line, and a kernel manager that launches kernels in it.

Inside the sandbox the kernel sees the Python environment (read-only), the system's libraries (read-only),
a private /tmp, and its working folder (the submission's own copy, writable). It has no network (its own,
empty network namespace), its own PID namespace, a memory limit (RLIMIT_DATA, via prlimit), and an
environment of a few safe variables. It talks to the trusted side over Unix sockets (jupyter_client's
``ipc`` transport) in a private folder bound into the sandbox.
"""
from __future__ import annotations

import functools
import glob
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, List, Unicode

log = logging.getLogger(__name__)

#: Read-only system folders the kernel needs (shared libraries, certificates, locale, fonts).
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")

#: Environment variables passed from the grader's environment into the kernel; everything else is dropped.
PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

NO_SANDBOX_WARNING = """
!!! dlvision: NO SANDBOX. bubblewrap (`bwrap`) is missing or cannot create namespaces here ({reason}).
!!! Student code runs with this user's rights: it can read source/, graders/ and other students' work,
!!! write gradebook.db and use the network. Scores stay trusted (graders run outside the kernel), but do not
!!! grade untrusted work like this: install bubblewrap (Debian: apt-get install bubblewrap) or enable
!!! unprivileged user namespaces. See README, "The sandbox".
"""


@functools.cache
def sandbox_problem(bwrap: str = "bwrap") -> str | None:
    """Why no sandbox can be made here, or None when bubblewrap works."""
    if shutil.which(bwrap) is None:
        return f"'{bwrap}' is not on PATH"
    probe = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
                            "--dev", "/dev", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return (probe.stderr.strip() or f"exit status {probe.returncode}")[:300]
    return None


@functools.cache
def warn_no_sandbox(reason: str) -> None:
    """Say loudly, once per run, that student code runs without a sandbox."""
    message = NO_SANDBOX_WARNING.format(reason=reason)
    log.warning(message)
    print(message, file=sys.stderr, flush=True)


def python_folders() -> list[Path]:
    """The folders that hold this Python environment and the dlvision package (for editable installs)."""
    import dlvision

    folders = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    folders.add(Path(dlvision.__file__).parent)
    folders |= {f.resolve() for f in folders}
    # Keep the outermost folders only, so no folder is bound twice.
    return sorted(f for f in folders if not any(o != f and o in f.parents for o in folders))


def bwrap_command(kernel_cmd: list[str], *, workdir: str, rundir: str, memory_bytes: int,
                  read_only: list[Path], gpu_devices: list[str] = (), bwrap: str = "bwrap") -> list[str]:
    """The bubblewrap command line that runs ``kernel_cmd`` in the sandbox (see the module docstring)."""
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
           "--tmpfs", "/dev/shm", "--tmpfs", "/tmp"]
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            cmd += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            cmd += ["--ro-bind", folder, folder]
    for folder in read_only:
        cmd += ["--ro-bind", str(folder), str(folder)]
    for device in gpu_devices:
        cmd += ["--dev-bind", device, device]
    if gpu_devices:  # the CUDA driver reads its topology from /sys
        cmd += ["--ro-bind", "/sys", "/sys"]
    # The sandbox's own root is read-only too: parent folders of the binds exist there, but nothing can be written.
    cmd += ["--bind", workdir, workdir, "--bind", rundir, rundir, "--remount-ro", "/", "--chdir", workdir,
            "--unsetenv", "JPY_PARENT_PID", "--setenv", "HOME", "/tmp", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
            "--"]
    return cmd + limit_command(kernel_cmd, memory_bytes)


def limit_command(kernel_cmd: list[str], memory_bytes: int) -> list[str]:
    """``kernel_cmd`` under a data-segment limit (RLIMIT_DATA: a memory bomb gets MemoryError, CUDA still works)."""
    return ["prlimit", f"--data={memory_bytes}", "--"] + list(kernel_cmd)


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run in the bubblewrap sandbox, interrupted by message.

    Where no sandbox can be made, it warns loudly once per run and runs the kernel with the memory limit only
    (or refuses, with ``require_sandbox``).
    """

    sandbox = Bool(True, help="Run student kernels under bubblewrap.").tag(config=True)
    require_sandbox = Bool(False, help="Refuse to start a kernel when no sandbox can be made.").tag(config=True)
    memory_limit = Integer(6 << 30, help="Bytes of data memory (RLIMIT_DATA) a student kernel may use.").tag(config=True)
    extra_read_only = List(Unicode(), help="More folders the kernel may read (e.g. a dataset cache).").tag(config=True)
    bwrap = Unicode("bwrap", help="The bubblewrap executable.").tag(config=True)
    cpu_threads = Integer(1, help=("Threads the kernel's torch and BLAS may use (OMP_NUM_THREADS); 0 keeps the "
                                   "grader's setting. More threads than free cores make small tensor work on a busy "
                                   "grading machine tens of times slower.")).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._rundir = tempfile.mkdtemp(prefix="dlvision-kernel-")
        weakref.finalize(self, shutil.rmtree, self._rundir, ignore_errors=True)
        self.transport = "ipc"
        self.ip = os.path.join(self._rundir, "kernel-ipc")
        self.connection_file = os.path.join(self._rundir, "kernel.json")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        # ipykernel reads SIGINT from a message inside the sandbox; a signal to bwrap would not reach it.
        self.kernel_spec.interrupt_mode = "message"
        env = {k: v for k, v in (kw.get("env") or os.environ).items() if k in PASSED_ENVIRONMENT}
        workdir = os.path.abspath(kw.get("cwd") or os.getcwd())
        problem = sandbox_problem(self.bwrap) if self.sandbox else "disabled by SandboxedKernelManager.sandbox"
        if problem is None:
            read_only = python_folders() + [Path(p) for p in self.extra_read_only]
            kernel_cmd = bwrap_command(kernel_cmd, workdir=workdir, rundir=self._rundir,
                                       memory_bytes=self.memory_limit, read_only=read_only,
                                       gpu_devices=sorted(glob.glob("/dev/nvidia*")), bwrap=self.bwrap)
        elif self.require_sandbox:
            raise RuntimeError(f"no sandbox can be made ({problem}); install bubblewrap or unset require_sandbox")
        else:
            warn_no_sandbox(problem)
            kernel_cmd = limit_command(kernel_cmd, self.memory_limit)
            env.update(HOME=tempfile.mkdtemp(prefix="dlvision-home-", dir=self._rundir))
        env.setdefault("PATH", os.defpath)
        if self.cpu_threads:
            env.update(OMP_NUM_THREADS=str(self.cpu_threads), MKL_NUM_THREADS=str(self.cpu_threads))
        # The kernel's stdout only carries ipykernel's start-up banner; its stderr is kept for crashes.
        await super()._async_launch_kernel(kernel_cmd, **{**kw, "env": env, "cwd": workdir,
                                                          "stdout": subprocess.DEVNULL})
