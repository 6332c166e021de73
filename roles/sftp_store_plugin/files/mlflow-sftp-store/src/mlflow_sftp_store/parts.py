"""Part files: the hidden files an upload writes before it renames them into place.

Each upload attempt gets its own name, ``.<name>.<pid>-<12 hex>.mlflow-sftp.part``, so a retry
removes only its own leftover. Part files of processes that were killed mid-upload are removed by
age (no write for ``MLFLOW_SFTP_STALE_PART_HOURS``, default 24 h); only names of this pattern
(including the 1.1 form without ``<pid>-``) that are regular files are ever considered.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import stat
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable

import paramiko

_logger = logging.getLogger(__name__)

PART_SUFFIX = ".mlflow-sftp.part"
# Leaves room for the prefix and suffix within the usual 255-byte NAME_MAX.
_MAX_NAME_BYTES = 180
_PART_RE = re.compile(r"\..+\.(?:[0-9]+-)?[0-9a-f]{12}" + re.escape(PART_SUFFIX), re.DOTALL)
# Directories swept recently, per process: (user, host, port, directory) -> time.monotonic().
_MAX_REMEMBERED = 4096
_swept: OrderedDict[tuple, float] = OrderedDict()
_swept_lock = threading.Lock()


def part_name(final_name: str) -> str:
    """A fresh, unique part-file name for an upload of ``final_name`` (same directory)."""
    raw = final_name.encode("utf-8", "surrogateescape")
    if len(raw) > _MAX_NAME_BYTES:
        final_name = raw[:_MAX_NAME_BYTES].decode("utf-8", "ignore")
    return f".{final_name}.{os.getpid()}-{uuid.uuid4().hex[:12]}{PART_SUFFIX}"


def is_part_name(name: str) -> bool:
    """True for names this plugin gives its part files (and for nothing else)."""
    return _PART_RE.fullmatch(name) is not None


def sweep_due(key: tuple, max_age: float) -> bool:
    """True (and remembered) when ``key``'s directory was not swept by this process recently.

    A directory is swept at most once per ``min(max_age, 1 h)``; 0 means sweeping is off.
    """
    if max_age <= 0:
        return False
    now = time.monotonic()
    interval = min(max_age, 3600.0)
    with _swept_lock:
        last = _swept.get(key)
        if last is not None and now - last < interval:
            return False
        _swept[key] = now
        _swept.move_to_end(key)
        while len(_swept) > _MAX_REMEMBERED:
            _swept.popitem(last=False)
    return True


def stale_parts(entries: Iterable[paramiko.SFTPAttributes], now: float, max_age: float) -> list[str]:
    """Names among ``entries`` that are this plugin's part files, regular, untouched for ``max_age`` s.

    ``now`` is a time on the SFTP server's clock where one is known (the mtime of a file just
    written), otherwise the local clock.
    """
    if max_age <= 0:
        return []
    found = []
    for attr in entries:
        if not is_part_name(attr.filename) or not stat.S_ISREG(attr.st_mode or 0):
            continue
        if attr.st_mtime is not None and now - attr.st_mtime > max_age:
            found.append(attr.filename)
    return found


def remove_stale(
    sftp: paramiko.SFTPClient,
    directory: str,
    entries: Iterable[paramiko.SFTPAttributes],
    now: float,
    max_age: float,
) -> list[str]:
    """Remove the abandoned part files among ``entries`` of ``directory``; best effort, never raises
    for a file (a concurrent sweeper may have removed it, the user may lack the right)."""
    removed = []
    for name in stale_parts(entries, now, max_age):
        try:
            sftp.remove(posixpath.join(directory, name))
        except OSError as exc:
            _logger.debug("Could not remove stale part file %s/%s: %s", directory, name, exc)
            continue
        removed.append(name)
    if removed:
        _logger.info(
            "Removed %d abandoned upload part file(s) older than %.1f h in %s: %s",
            len(removed),
            max_age / 3600,
            directory,
            ", ".join(removed),
        )
    return removed
