"""Local I/O faults said as they are, and a reserve of disk space to record them.

A full disk must not leave a run "running" nor give it an invented reason:
:func:`io_reason` says which file could not be written and why,
:func:`is_disk_full` tells a full disk (or quota) from other faults, also
when the database says it (SQLite's "database or disk is full", PostgreSQL's
disk_full), and :class:`DiskReserve` keeps a few MiB of the output tree's
disk set aside: a runner that meets a full disk frees them, so that it can
still write its records and those of the database (SQLite lives in the
output tree by default).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

# The errors of a full disk or an exhausted quota.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# SQLite's result code SQLITE_FULL ("database or disk is full").
SQLITE_FULL = 13
# PostgreSQL's SQLSTATE disk_full.
PG_DISK_FULL = "53100"
# What a program's log says on a full disk (strerror(ENOSPC), e.g. in a Python traceback).
ENOSPC_TEXT = "No space left on device"
# The size of the output tree's reserve.
RESERVE_BYTES = 4 << 20
RESERVE_NAME = ".reserve"


def is_disk_full(exc: BaseException) -> bool:
    """True if ``exc`` (or an error it wraps) says a disk or quota is full."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        if getattr(error, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if getattr(error, "sqlstate", None) == PG_DISK_FULL:
            return True
        orig = getattr(error, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's
        pending += [orig if isinstance(orig, BaseException) else None]
        pending += [error.__cause__, error.__context__]
    return False


def io_reason(exc: BaseException) -> str:
    """A local I/O fault for people: what failed, and on which file.

    ``no space left on device writing /p/outputs/runs/rs_x/result.json``;
    a database on a full disk gives ``no space left on device writing the
    database``.
    """
    if isinstance(exc, OSError):
        what = (exc.strerror or str(exc)).rstrip(".")
        what = what[:1].lower() + what[1:]
        return f"{what} writing {exc.filename}" if exc.filename else what
    if is_disk_full(exc):
        return f"{ENOSPC_TEXT[:1].lower()}{ENOSPC_TEXT[1:]} writing the database"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def with_file_name(exc: OSError, path: Path) -> OSError:
    """``exc`` itself if it names a file, else the same error naming ``path``."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, str(path))


def free_bytes(path: Path) -> int | None:
    """Free bytes for unprivileged users on the file system of ``path`` (None: unknown)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class DiskReserve:
    """A file that holds disk space of the output tree until a full disk needs it.

    Args:
        path: The reserve file.
        size: How many bytes it holds.
    """

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size

    def hold(self) -> bool:
        """Make sure the reserve exists; False if the disk has no room for it (it is left out)."""
        try:
            if self.path.stat().st_size >= self.size:
                return True
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("Cannot look at the disk reserve %s: %s", self.path, exc)
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _fill(fd, self.size)
            finally:
                os.close(fd)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            folder = self.path.parent
            logger.warning(
                "No room for the disk reserve (%d bytes) in %s: %s", self.size, folder, exc
            )
            return False
        return True

    def release(self) -> bool:
        """Give the reserved space back; True if there was any."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def _fill(fd: int, size: int) -> None:
    """Write ``size`` bytes that take real blocks, and flush them to the disk.

    Written rather than ``posix_fallocate``d: that call is missing on some
    systems (macOS) and refused by some file systems, and random bytes hold
    their blocks also where the file system compresses or deduplicates.
    """
    chunk = os.urandom(min(size, 1 << 20))
    left = size
    while left > 0:
        left -= os.write(fd, chunk[:left])
    os.fsync(fd)
