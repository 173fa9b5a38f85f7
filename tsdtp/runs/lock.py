"""An exclusive lock file: one writer at a time, and a lock whose holder died is taken over.

The lock is `fcntl.flock` on the file, which the operating system releases when its holder exits or is
killed, so no stale lock ever blocks anyone. The file records who holds it (pid, host, command, since
when) for the message a second writer gets, and is removed when the holder releases it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tsdtp.errors import RunBusyError


@contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file `path` for the block; RunBusyError names `what` and the process holding it."""
    descriptor = _acquire(Path(path), what)
    try:
        yield
    finally:
        Path(path).unlink(missing_ok=True)
        os.close(descriptor)


def _acquire(path: Path, what: str) -> int:
    """Open, lock and sign `path`; returns its descriptor."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(path)
            os.close(descriptor)
            raise RunBusyError(f"{what} is in use by {holder}; wait until it ends, or stop it and run this again "
                               f"(the lock file {path.name} is released when its process ends)") from None
        if _still_at(descriptor, path):
            break
        os.close(descriptor)  # the holder removed the file as we opened it: lock the new one
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
             "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""}
    os.ftruncate(descriptor, 0)
    os.write(descriptor, json.dumps(owner).encode())
    return descriptor


def _still_at(descriptor: int, path: Path) -> bool:
    """Whether `path` still names the open file `descriptor`."""
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def lock_holder(path: Path) -> str:
    """Who holds the lock file `path`, in words: `process 123 on host (`tsdtp train ...`, since ...)`."""
    try:
        owner = json.loads(Path(path).read_text())
        return f"process {owner['pid']} on {owner['host']} (`{owner['command']}`, since {owner['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
