"""The student kernel's sandbox: a bubblewrap command line, and a kernel manager that launches kernels in it.

Inside the sandbox a kernel sees the Python environment and the system's libraries (read-only), a private
``/tmp`` and a working folder (``/submission``), both size-limited tmpfs filled with copies of the submission's
regular files, and the folder of its own sockets. It has no network (an empty network namespace), its own PID
and IPC namespaces, no capabilities, and limits on memory, processes, file sizes and open files. It talks to
the trusted side over Unix sockets (jupyter_client's ``ipc`` transport), whose messages are bounded in size
before they are parsed.

When grading runs as root, bubblewrap builds the mounts and ``setpriv`` then drops the kernel to a fresh,
unprivileged uid with an empty capability set (so the process limit counts only that kernel's processes). As
any other user, bubblewrap runs unprivileged in a new user namespace, which the kernel cannot nest.
"""
from __future__ import annotations

import functools
import glob
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.session import json_unpacker
from traitlets import Bool, Integer, List, Unicode

from dlvision.grading import files

log = logging.getLogger(__name__)

#: Read-only system folders the kernel needs (shared libraries, certificates, locale, fonts).
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")

#: Environment variables passed from the grader's environment into the kernel; everything else is dropped.
PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: Where the kernel's working folder is, inside the sandbox.
WORKDIR = "/submission"

NO_SANDBOX_WARNING = """
!!! dlvision: NO SANDBOX. bubblewrap (`bwrap`) is missing or cannot create namespaces here ({reason}).
!!! Student code runs with this user's rights: it can read source/, graders/ and other students' work,
!!! write gradebook.db and use the network. Scores stay trusted (graders run outside the kernel), but do not
!!! grade untrusted work like this: install bubblewrap (Debian: apt-get install bubblewrap) or enable
!!! unprivileged user namespaces. See README, "The sandbox".
"""


class MessageTooLarge(ValueError):
    """A kernel message beyond the trusted side's bounds: refused before it is parsed."""


@functools.cache
def sandbox_problem(bwrap: str = "bwrap") -> str | None:
    """Why no sandbox can be made here, or None when bubblewrap works."""
    if shutil.which(bwrap) is None:
        return f"'{bwrap}' is not on PATH"
    probe = subprocess.run([bwrap, *_namespace_flags(), "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
                            "--dev", "/dev", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return (probe.stderr.strip() or f"exit status {probe.returncode}")[:300]
    if _running_as_root() and shutil.which("setpriv") is None:
        return "grading runs as root but `setpriv` (util-linux) is missing, so the kernel could keep root's rights"
    return None


@functools.cache
def warn_no_sandbox(reason: str) -> None:
    """Say loudly, once per run, that student code runs without a sandbox."""
    message = NO_SANDBOX_WARNING.format(reason=reason)
    log.warning(message)
    print(message, file=sys.stderr, flush=True)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _namespace_flags() -> list[str]:
    """Every namespace but the user one for root (bwrap then keeps the rights to mount); all of them otherwise."""
    if _running_as_root():
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    return ["--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]


def python_folders() -> list[Path]:
    """The folders that hold this Python environment and the dlvision package (for editable installs)."""
    import dlvision

    folders = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    folders.add(Path(dlvision.__file__).parent)
    folders |= {f.resolve() for f in folders}
    # Keep the outermost folders only, so no folder is bound twice.
    return sorted(f for f in folders if not any(o != f and o in f.parents for o in folders))


def bwrap_command(kernel_cmd: list[str], *, rundir: str, limits: dict[str, int], read_only: list[Path],
                  workdir_files: dict[str, int] | None = None, gpu_devices: list[str] = (), uid: int | None = None,
                  proc: bool = True, bwrap: str = "bwrap") -> list[str]:
    """The bubblewrap command line that runs ``kernel_cmd`` in the sandbox (see the module docstring).

    ``limits``: ``memory`` (bytes of data segment), ``processes``, ``file_size``, ``open_files``, ``tmp_size`` and
    ``workdir_size`` (bytes of each tmpfs). ``workdir_files`` maps names in the working folder to open file
    descriptors whose contents bubblewrap copies there. ``uid``: the unprivileged uid to drop to (root only).
    ``proc``: mount /proc (without it there is no /proc/self/mem, through which a process can rewrite itself).
    """
    cmd = [bwrap, *_namespace_flags(), "--die-with-parent", "--new-session", "--dev", "/dev"]
    if proc:
        cmd += ["--proc", "/proc"]
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            cmd += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            cmd += ["--ro-bind", folder, folder]
    # The scratch folders first, so that a bind below them (an environment installed under /tmp) lands on top.
    cmd += ["--size", str(limits["tmp_size"]), "--tmpfs", "/tmp", "--chmod", "1777", "/tmp",
            "--size", str(limits["tmp_size"] // 4), "--tmpfs", "/dev/shm", "--chmod", "1777", "/dev/shm",
            "--size", str(limits["workdir_size"]), "--tmpfs", WORKDIR, "--chmod", "0777", WORKDIR]
    binds = [str(f) for f in read_only] + [rundir]
    # bubblewrap would create the parents of a bind point readable by root only; make them traversable.
    parents = sorted({str(p) for b in binds for p in Path(b).parents if str(p) != "/"} - set(SYSTEM_FOLDERS),
                     key=lambda p: p.count("/"))
    for parent in parents:
        cmd += ["--perms", "0755", "--dir", parent]
    for folder in read_only:
        cmd += ["--ro-bind", str(folder), str(folder)]
    for device in gpu_devices:
        cmd += ["--dev-bind", device, device]
    if gpu_devices:  # the CUDA driver reads its topology from /sys
        cmd += ["--ro-bind", "/sys", "/sys"]
    for name, fd in (workdir_files or {}).items():
        cmd += ["--perms", "0666", "--file", str(fd), f"{WORKDIR}/{name}"]
    # The sandbox's own root is read-only too: parent folders of the binds exist there, but nothing can be written.
    cmd += ["--bind", rundir, rundir, "--remount-ro", "/", "--chdir", WORKDIR, "--unsetenv", "JPY_PARENT_PID",
            "--setenv", "HOME", "/tmp", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "PYTHONNOUSERSITE", "1", "--"]
    return cmd + limit_command(kernel_cmd, limits, uid)


def limit_command(kernel_cmd: list[str], limits: dict[str, int], uid: int | None = None) -> list[str]:
    """``kernel_cmd`` under resource limits, and, if ``uid`` is given, as that uid with no capabilities.

    RLIMIT_DATA bounds memory (a memory bomb gets MemoryError; CUDA's large address space still works);
    RLIMIT_NPROC counts the uid's processes and threads, so it bounds a fork bomb only under a uid of its own.
    """
    cmd = ["prlimit", f"--data={limits['memory']}", f"--fsize={limits['file_size']}",
           f"--nofile={limits['open_files']}", "--core=0"]
    if uid is not None:
        cmd += [f"--nproc={limits['processes']}", "--", "setpriv", f"--reuid={uid}", f"--regid={uid}",
                "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return cmd + ["--"] + list(kernel_cmd)


def bounded_unpacker(max_bytes: int, max_items: int):
    """A JSON unpacker for kernel messages that refuses, before parsing, more bytes or JSON values than allowed."""
    def unpack(data):
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        if len(raw) > max_bytes:
            raise MessageTooLarge(f"a message of {len(raw):,} bytes (the limit is {max_bytes:,})")
        if raw.count(b",") + raw.count(b"[") + raw.count(b"{") > max_items:
            raise MessageTooLarge(f"a message of more than {max_items:,} JSON values")
        return json_unpacker(raw)
    return unpack


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run in the bubblewrap sandbox, interrupted by message.

    Where no sandbox can be made, it warns loudly once per run and runs the kernel with the resource limits only
    (or refuses, with ``require_sandbox``).
    """

    sandbox = Bool(True, help="Run student kernels under bubblewrap.").tag(config=True)
    require_sandbox = Bool(False, help="Refuse to start a kernel when no sandbox can be made.").tag(config=True)
    memory_limit = Integer(6 << 30, help="Bytes of data memory (RLIMIT_DATA) a student kernel may use.").tag(config=True)
    process_limit = Integer(128, help=("Processes and threads a kernel may run at once (RLIMIT_NPROC; enforced when "
                                       "grading runs as root, under a uid of the kernel's own).")).tag(config=True)
    file_size_limit = Integer(64 << 20, help="Bytes any one file the kernel writes may hold.").tag(config=True)
    disk_limit = Integer(256 << 20, help="Bytes of the kernel's working folder and of its /tmp (each a tmpfs).").tag(
        config=True)
    open_files_limit = Integer(1024, help="File descriptors a kernel may hold open.").tag(config=True)
    max_message_bytes = Integer(32 << 20, help="Bytes one message from the kernel may hold; larger ones are refused "
                                               "before they are read.").tag(config=True)
    max_message_items = Integer(1_000_000, help="JSON values one message from the kernel may hold.").tag(config=True)
    max_workdir_files = Integer(200, help="Regular files of the submission copied into the kernel's working folder.").tag(
        config=True)
    extra_read_only = List(Unicode(), help="More folders the kernel may read (e.g. a dataset cache).").tag(config=True)
    bwrap = Unicode("bwrap", help="The bubblewrap executable.").tag(config=True)
    cpu_threads = Integer(1, help=("Threads the kernel's torch and BLAS may use (OMP_NUM_THREADS); 0 keeps the "
                                   "grader's setting. More threads than free cores make small tensor work on a busy "
                                   "grading machine tens of times slower.")).tag(config=True)
    exec_lines = List(Unicode(), help="Python lines the kernel runs at start-up, before any student code.").tag(
        config=True)
    mount_proc = Bool(True, help="Give the kernel a /proc (the grading kernel gets none where it has no GPU).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._rundir = tempfile.mkdtemp(prefix="dlvision-kernel-")
        weakref.finalize(self, shutil.rmtree, self._rundir, ignore_errors=True)
        self.transport = "ipc"
        self.ip = os.path.join(self._rundir, "kernel-ipc")
        self.connection_file = os.path.join(self._rundir, "kernel.json")
        self.session.unpack = bounded_unpacker(self.max_message_bytes, self.max_message_items)
        self.uid = 10_000_000 + secrets.randbelow(2_000_000_000) if _running_as_root() else None

    @property
    def limits(self) -> dict[str, int]:
        return {"memory": self.memory_limit, "processes": self.process_limit, "file_size": self.file_size_limit,
                "open_files": self.open_files_limit, "tmp_size": self.disk_limit, "workdir_size": self.disk_limit}

    def client(self, **kwargs) -> AsyncKernelClient:
        """A client whose sockets drop any message larger than ``max_message_bytes`` before reading it."""
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        return super().client(context=context, **kwargs)

    def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.exec_lines:
            cmd.append(f"--IPKernelApp.exec_lines={json.dumps(list(self.exec_lines))}")
        return cmd

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        # ipykernel reads SIGINT from a message inside the sandbox; a signal to bwrap would not reach it.
        self.kernel_spec.interrupt_mode = "message"
        env = {k: v for k, v in (kw.get("env") or os.environ).items() if k in PASSED_ENVIRONMENT}
        problem = sandbox_problem(self.bwrap) if self.sandbox else "disabled by SandboxedKernelManager.sandbox"
        opened: dict[str, int] = {}
        if problem is None:
            if self.uid is not None:  # the kernel, under its own uid, creates its sockets here
                os.chown(self._rundir, self.uid, self.uid)
                os.chmod(self.connection_file, 0o644)
            cwd = kw.get("cwd")
            opened = files.open_regular_files(Path(cwd), self.max_workdir_files, self.disk_limit // 2) if cwd else {}
            read_only = python_folders() + [Path(p) for p in self.extra_read_only]
            kernel_cmd = bwrap_command(kernel_cmd, rundir=self._rundir, limits=self.limits, read_only=read_only,
                                       workdir_files={name: fd for name, fd in opened.items()},
                                       gpu_devices=sorted(glob.glob("/dev/nvidia*")), uid=self.uid,
                                       proc=self.mount_proc, bwrap=self.bwrap)
            kw = {**kw, "cwd": "/", "pass_fds": tuple(opened.values())}
        elif self.require_sandbox:
            raise RuntimeError(f"no sandbox can be made ({problem}); install bubblewrap or unset require_sandbox")
        else:
            warn_no_sandbox(problem)
            kernel_cmd = limit_command(kernel_cmd, self.limits)
            env.update(HOME=tempfile.mkdtemp(prefix="dlvision-home-", dir=self._rundir))
        env.setdefault("PATH", os.defpath)
        if self.cpu_threads:
            env.update(OMP_NUM_THREADS=str(self.cpu_threads), MKL_NUM_THREADS=str(self.cpu_threads))
        # The kernel's output streams go to a file in its run folder, bounded by the file-size limit.
        errors = open(os.path.join(self._rundir, "kernel.log"), "wb")
        try:
            await super()._async_launch_kernel(kernel_cmd, **{**kw, "env": env, "stdout": errors, "stderr": errors})
        finally:
            errors.close()
            for fd in opened.values():
                os.close(fd)

    def kernel_log(self, max_chars: int = 2000) -> str:
        """The end of what the kernel (or bubblewrap) wrote to its standard streams, for start-up failures."""
        try:
            return files.read_regular(Path(self._rundir) / "kernel.log", 1 << 20).decode(errors="replace")[-max_chars:]
        except OSError:
            return ""
