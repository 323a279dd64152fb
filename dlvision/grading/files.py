"""Student files, read and written as regular files only: no link is ever followed out of a student's folder.

Anything a student submits, and anything a kernel leaves behind, may be a symbolic link, a FIFO, a device, a
folder where a file is expected, or huge. These helpers open every path component below a trusted root
without following links (``O_NOFOLLOW`` relative to the parent's descriptor), accept regular files only,
and bound sizes and counts before reading.
"""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from pathlib import Path, PurePosixPath


class UnsafeFile(OSError):
    """A path that is a link, not a regular file or folder, too large, or too many: the message says which."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _parts(relative: str | Path) -> list[str]:
    parts = [p for p in PurePosixPath(relative).parts if p not in ("", ".")]
    if any(p in ("..", "/") for p in parts):
        raise UnsafeFile(errno.EINVAL, f"'{relative}' leaves its folder")
    return parts


def _open_dir(root: Path, parts: list[str], create: bool = False) -> int:
    """A descriptor of the folder ``root/parts...``, no component below ``root`` followed if it is a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeFile(error.errno, f"'{part}' is a link or not a folder") from None
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_regular(dir_fd: int, name: str) -> int:
    """Open ``name`` in ``dir_fd`` for reading if it is a regular file (never a link, FIFO or device)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeFile(error.errno, f"'{name}' is a symbolic link") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(errno.EINVAL, f"'{name}' is not a regular file")
    return fd


def _read_fd(fd: int, name: str, max_bytes: int) -> bytes:
    size = os.fstat(fd).st_size
    if size > max_bytes:
        raise UnsafeFile(errno.EFBIG, f"'{name}' holds {size:,} bytes (the limit is {max_bytes:,})")
    chunks, total = [], 0
    while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise UnsafeFile(errno.EFBIG, f"'{name}' holds more than {max_bytes:,} bytes")
    return b"".join(chunks)


def read_regular(path: Path, max_bytes: int, root: Path | None = None) -> bytes:
    """The bytes of the regular file ``path``; with ``root``, no component of ``path`` below it may be a link."""
    path = Path(path)
    if root is None:
        root, parts = path.parent, [path.name]
    else:
        parts = _parts(path.relative_to(root))
    dir_fd = _open_dir(Path(root), parts[:-1])
    try:
        fd = _open_regular(dir_fd, parts[-1])
    finally:
        os.close(dir_fd)
    try:
        return _read_fd(fd, str(path), max_bytes)
    finally:
        os.close(fd)


def read_folder(root: Path, relative: str | Path, *, max_files: int, max_bytes: int,
                max_depth: int = 4) -> dict[str, bytes]:
    """``{relative name: bytes}`` of every regular file under ``root/relative``, links and special files skipped.

    Raises UnsafeFile if the folder itself (or a component of its path) is a link, or if there are more than
    ``max_files`` files or ``max_bytes`` bytes in all.
    """
    found: dict[str, bytes] = {}
    total = 0

    def walk(dir_fd: int, prefix: str, depth: int) -> None:
        nonlocal total
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            mode = entry.stat(follow_symlinks=False).st_mode
            name = f"{prefix}{entry.name}"
            if stat.S_ISDIR(mode) and depth < max_depth:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    walk(child, name + "/", depth + 1)
                finally:
                    os.close(child)
            elif stat.S_ISREG(mode):
                if len(found) >= max_files:
                    raise UnsafeFile(errno.EFBIG, f"more than {max_files} files")
                fd = _open_regular(dir_fd, entry.name)
                try:
                    data = _read_fd(fd, name, max_bytes - total)
                finally:
                    os.close(fd)
                total += len(data)
                found[name] = data

    fd = _open_dir(Path(root), _parts(relative))
    try:
        walk(fd, "", 0)
    finally:
        os.close(fd)
    return found


def is_real_folder(root: Path, relative: str | Path) -> bool:
    """True if ``root/relative`` is a folder reached without following any link below ``root``."""
    try:
        os.close(_open_dir(Path(root), _parts(relative)))
        return True
    except OSError:
        return False


def write_folder(root: Path, relative: str | Path, contents: dict[str, bytes]) -> None:
    """Replace the folder ``root/relative`` with one holding exactly ``contents`` (names may contain '/')."""
    stage_folder(root, relative, contents).commit()


class StagedFolder:
    """A folder written beside its destination: :meth:`commit` puts it in place, :meth:`discard` removes it."""

    def __init__(self, root: Path, relative: str | Path, staging: str):
        self._root, self._parts, self._staging = Path(root), _parts(relative), staging

    def commit(self) -> None:
        """Replace the destination (a link found there is removed, never followed) with the staged folder."""
        parent_fd = _open_dir(self._root, self._parts[:-1])
        try:
            _remove(parent_fd, self._parts[-1])
            os.rename(self._staging, self._parts[-1], src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        finally:
            os.close(parent_fd)

    def discard(self) -> None:
        parent_fd = _open_dir(self._root, self._parts[:-1])
        try:
            _remove(parent_fd, self._staging)
        finally:
            os.close(parent_fd)


def stage_folder(root: Path, relative: str | Path, contents: dict[str, bytes]) -> StagedFolder:
    """Write ``contents`` (names may contain '/') into a new folder beside ``root/relative``, creating missing
    parents; every file is created fresh (``O_EXCL | O_NOFOLLOW``)."""
    parts = _parts(relative)
    parent_fd = _open_dir(Path(root), parts[:-1], create=True)
    try:
        staging = f".{parts[-1]}.{secrets.token_hex(6)}.tmp"
        os.mkdir(staging, 0o755, dir_fd=parent_fd)
        staging_fd = os.open(staging, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            for name, data in contents.items():
                *folders, base = _parts(name)
                dir_fd = _open_dir(Path(f"/proc/self/fd/{staging_fd}"), folders, create=True)
                try:
                    fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                                 dir_fd=dir_fd)
                    with os.fdopen(fd, "wb") as out:
                        out.write(data)
                finally:
                    os.close(dir_fd)
        finally:
            os.close(staging_fd)
    finally:
        os.close(parent_fd)
    return StagedFolder(root, relative, staging)


def _remove(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd``: a folder with everything in it, or a link or file itself, never a link's target."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def open_regular_files(folder: Path, max_files: int, max_bytes: int) -> dict[str, int]:
    """``{name: read-only descriptor}`` of the regular files directly in ``folder`` (within the bounds, others
    skipped); the caller closes the descriptors."""
    opened: dict[str, int] = {}
    total = 0
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            if len(opened) >= max_files or not entry.is_file(follow_symlinks=False):
                continue
            try:
                fd = _open_regular(dir_fd, entry.name)
            except OSError:
                continue
            size = os.fstat(fd).st_size
            if total + size > max_bytes:
                os.close(fd)
                continue
            os.set_inheritable(fd, True)
            total += size
            opened[entry.name] = fd
    finally:
        os.close(dir_fd)
    return opened
