"""Atomic writes: every output goes to a temporary name beside its target, then is renamed.

The temporary file is created with mode ``0o666`` minus the process's umask (as ``open`` would
create the target itself), not ``tempfile.mkstemp``'s ``0o600``: the rename keeps the mode, and
colleagues sharing an output folder must be able to read it. Folders are created with
``0o777`` minus the umask (``mkdir``'s default).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gigapatch.errors import OutputError

#: why a write failed, by errno, where it is the place and not the program: said in one line
_WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "a file size limit was reached (ulimit -f?) or the file system's largest file",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
}


def write_failure(path: str | Path, error: BaseException) -> OutputError | None:
    """The one-line :class:`OutputError` for an ``OSError`` that says the output ``path`` cannot
    be written (full disk, file size limit, quota, read-only, permission); None for any other
    error (a bug, which keeps its own type)."""
    if not isinstance(error, OSError) or error.errno not in _WRITE_FAILURES:
        return None
    return OutputError(f"{path}: cannot write it: {_WRITE_FAILURES[error.errno]} "
                       f"({error.strerror or os.strerror(error.errno)})")


def _create_temporary(path: Path) -> Path:
    """A new empty file ``.<name>.<random>.tmp`` beside ``path``, mode 0o666 & ~umask (the
    kernel applies the umask; no process-wide umask is read or changed)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds
    (the temporary file is removed otherwise, also on Ctrl-C)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _create_temporary(path)
    except OSError as e:
        raise (write_failure(path, e) or e) from None
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        if (failure := write_failure(path, e)) is not None:
            raise failure from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (created, with its folder, when
    missing; released on exit or with the process) while the block runs: writers of one shared
    file in several processes take turns. Where there is no ``fcntl`` (not POSIX) the block
    runs unlocked; atomic writes still leave no half-written file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(p, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


__all__ = ["atomic_path", "file_lock", "write_bytes_atomic", "write_failure", "write_text_atomic"]
