"""The per-image lock file: one process writes an image's outputs at a time.

``<out>/.gigapatch/locks/<image_id>.lock`` holds ``{"pid", "host", "run", "since"}`` of its
holder. It is written whole to a temporary file first and then hard-linked to its name, which
fails when the lock exists (atomic, also on NFS): a process interrupted or killed while taking a
lock leaves either no lock or a complete one naming it, never an empty file (on a file system
without hard links, ``O_CREAT | O_EXCL`` and a write). A lock whose holder is a process of this
host that no longer exists is stale and broken by the next process that meets it, as is an empty
or unreadable one older than :data:`UNREADABLE_STALE_S`; a lock held by a live process, or by
another host, is respected (the image is skipped and the run says so; the holder's run records
it).
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gigapatch.cohort.records import STATE_DIR, now_iso

LOCKS = f"{STATE_DIR}/locks"
#: seconds after which an empty or unreadable lock file is stale (its writer was killed while
#: writing it without hard links, or it was damaged: a writer takes microseconds)
UNREADABLE_STALE_S = 60.0


def lock_path(out_dir: Path, image_id: str) -> Path:
    """``<out>/.gigapatch/locks/<image_id>.lock``."""
    return Path(out_dir) / LOCKS / f"{image_id}.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(path: Path) -> dict[str, Any] | None:
    """The holder of a lock file, or None when there is none (an unreadable one reads as {})."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def is_stale(holder: dict[str, Any]) -> bool:
    """A lock of this host whose process is gone. An empty one (being written, where there are
    no hard links) or one of another host is not stale by this rule (:func:`acquire` breaks an
    empty one once it is old)."""
    if holder.get("host") != socket.gethostname() or "pid" not in holder:
        return False
    return not pid_alive(int(holder["pid"]))


@dataclass
class ImageLock:
    """A held lock; :meth:`release` removes it only while it is still ours."""

    path: Path
    text: str
    #: a stale lock was broken to take this one: its dead holder may have left temporary files
    broke_stale: bool = False

    def release(self) -> None:
        try:
            if self.path.read_text() == self.text:
                self.path.unlink()
        except FileNotFoundError:
            pass


def acquire(out_dir: Path, image_id: str, run: str) -> ImageLock | dict[str, Any]:
    """Take the lock of ``image_id``; returns it, or the live holder's fields when another
    process holds it. A stale lock is broken first."""
    path = lock_path(out_dir, image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "run": run,
                       "since": now_iso()})
    tmp = _beside(path, f"{secrets.token_hex(4)}.new")
    broke = False
    try:
        tmp.write_text(text)
        for _ in range(3):
            if _create(path, tmp, text):
                _sweep(path)
                return ImageLock(path, text, broke)
            holder = read_lock(path)
            if holder is None:
                continue  # released meanwhile
            if not (is_stale(holder) or (not holder and _older_than(path, UNREADABLE_STALE_S))):
                return holder
            break_stale(path, holder)
            broke = True
    finally:
        tmp.unlink(missing_ok=True)
    holder = read_lock(path)
    return holder if holder is not None else {}


def _create(path: Path, written: Path, text: str) -> bool:
    """Give ``path`` the content of the file ``written`` (``text``) unless ``path`` exists:
    a hard link, or where the file system has none, an exclusive create and a write."""
    try:
        os.link(written, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here (EPERM, ENOTSUP...)
        pass
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


def _beside(path: Path, tag: str) -> Path:
    """``.<lock name>.<host>.<pid>.<tag>`` beside the lock ``path``: a file this process holds
    for a moment while taking the lock (``<token>.new``) or breaking it (``broken``)."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{tag}")


def _sweep(path: Path) -> None:
    """Remove the :func:`_beside` files that ended processes of this host left beside the lock
    ``path``, interrupted between writing one and removing it."""
    prefix = f".{path.name}.{socket.gethostname()}."
    for left in path.parent.glob(glob.escape(prefix) + "*"):
        found = re.fullmatch(r"(\d+)(?:\.[0-9a-f]{8}\.new|\.broken)", left.name[len(prefix):])
        if found and not pid_alive(int(found.group(1))):
            left.unlink(missing_ok=True)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def break_stale(path: Path, holder: dict[str, Any]) -> None:
    """Remove the stale lock ``path`` whose content was ``holder``. It is renamed away first
    (one process wins); if what was renamed is no longer that stale lock (another process broke
    and took it meanwhile), it is put back."""
    aside = _beside(path, "broken")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    try:
        if read_lock(aside) != holder:
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
    finally:
        aside.unlink(missing_ok=True)


def break_if_ours(out_dir: Path, image_id: str, run: str) -> None:
    """Remove the lock of ``image_id`` when a process of run ``run`` holds it and is gone
    (the run's driver, after its worker died, possibly on another host)."""
    path = lock_path(out_dir, image_id)
    holder = read_lock(path)
    if holder and holder.get("run") == run and (
        holder.get("host") != socket.gethostname() or not pid_alive(int(holder.get("pid", -1)))
    ):
        break_stale(path, holder)


__all__ = ["ImageLock", "acquire", "break_if_ours", "break_stale", "is_stale", "lock_path",
           "pid_alive", "read_lock"]
