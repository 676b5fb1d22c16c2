"""One training run per work directory, and the leftovers of interrupted ones.

- `WorkdirLock` lets one run at a time train in a work directory: the lock
  file names its owner, and a lock whose owner is gone is taken over.
- `clean_leftovers` removes the temporary folders of interrupted saves and
  exports; call it holding the lock, so no live run is writing them.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import time
from typing import Callable, List, Optional

LOCK_FILE = "run.lock"
SAVE_TEMP_GLOB = "ckpt-*_temp*"
EXPORT_TEMP_GLOB = os.path.join("export", "*", ".tmp-export-*")


class WorkdirInUseError(FileExistsError):
    """Another live run holds the work directory's lock."""


# -------------------------------------------------------------------- locks
def _start_ticks(pid: int) -> Optional[str]:
    """When process `pid` started (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, ticks: Optional[str]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _start_ticks(pid)
    return ticks is None or now is None or now == ticks


class WorkdirLock:
    """`workdir/run.lock`: one training run per work directory.

    The file holds the owner's host and pid. A lock whose owner is on this
    host and no longer running is stale and taken over, with a message.

    Raises (on entering):
      WorkdirInUseError: Naming the live owner (or one on another host,
        which cannot be checked from here).
    """

    def __init__(self, workdir: str, log: Callable[[str], None] = print):
        self.path = os.path.join(workdir, LOCK_FILE)
        self.log = log
        self.held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        pid = os.getpid()
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "pid": pid,
                       "start_ticks": _start_ticks(pid),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
        return True

    def __enter__(self):
        for _ in range(3):
            if self._create():
                self.held = True
                return self
            try:
                with open(self.path) as f:
                    owner = json.load(f)
                host, pid = owner["host"], int(owner["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                owner, host, pid = None, "?", -1
            if owner is None:
                if not os.path.exists(self.path):
                    continue  # released meanwhile
                self.log(f"Taking over {self.path}: it is unreadable "
                         "(a run killed while writing it).")
            elif host == socket.gethostname() and not _alive(
                    pid, owner.get("start_ticks")):
                self.log(f"Taking over the stale lock {self.path} of pid "
                         f"{pid} on {host}, which is no longer running "
                         f"(started {owner.get('started', '?')}).")
            else:
                raise WorkdirInUseError(
                    f"{os.path.dirname(self.path)} is in use by another "
                    f"training run: pid {pid} on host {host} (since "
                    f"{owner.get('started', '?')}). Wait for it, stop it, or "
                    "use another --workdir; if that run is gone (another "
                    f"host's run cannot be checked from here), delete "
                    f"{self.path}. Received: workdir="
                    f"{os.path.dirname(self.path)!r}")
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        raise WorkdirInUseError(f"Could not take {self.path}: another run "
                                "keeps taking it. Received: workdir="
                                f"{os.path.dirname(self.path)!r}")

    def __exit__(self, *exc):
        if self.held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self.held = False
        return False


# ---------------------------------------------------------------- leftovers
def clean_leftovers(workdir: str, checkpoint_dir: str,
                    log: Callable[[str], None] = print) -> List[str]:
    """Removes the temporary folders of interrupted saves (`ckpt-N_temp*`)
    and exports (`export/<model>/.tmp-export-*`); call it holding the
    work directory's lock, so no live run is writing them. Returns what was
    removed."""
    removed = sorted(glob.glob(os.path.join(glob.escape(checkpoint_dir),
                                            SAVE_TEMP_GLOB))
                     + glob.glob(os.path.join(glob.escape(workdir),
                                              EXPORT_TEMP_GLOB)))
    for path in removed:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
    if removed:
        log(f"Removed {len(removed)} temporary folder(s) left by an "
            f"interrupted save or export: {', '.join(removed)}")
    return removed
