"""Per-request result folders with unguessable ids, a time-to-live and a disk cap.

Every job gets ``root/<id>`` where ``id`` is ``secrets.token_urlsafe``; nothing the user sent
(file names included) ever becomes part of a path. An in-memory index keeps purging cheap:
expired results and, past the disk cap, the oldest ones are deleted; folders still being
written are never touched.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger("toonforge.storage")

ID_BYTES = 16
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")  # token_urlsafe(16) is 22 characters


def valid_id(result_id: str) -> bool:
    """True for strings that look like ids we hand out; rules out path tricks like ``..``."""
    return bool(_ID_RE.fullmatch(result_id))


@dataclass
class _Entry:
    created: float  # wall-clock seconds when reserved, or when finished
    owner: str | None
    size: int = 0
    done: bool = False
    forgotten: bool = False  # owner went away while the job ran: delete on commit


class ResultStore:
    """Result folders under ``root``; thread-safe."""

    def __init__(
        self,
        root: Path,
        ttl_s: float,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._strangers: list[Path] = []
        self.root.mkdir(parents=True, exist_ok=True)
        self._adopt_existing()

    # -- lifecycle of one result ----------------------------------------------------------
    def reserve(self, owner: str | None = None) -> str:
        """A fresh id whose folder :meth:`path` gives; the caller writes there, then commits."""
        with self._lock:
            while True:
                result_id = secrets.token_urlsafe(ID_BYTES)
                if result_id not in self._entries:
                    break
            self._entries[result_id] = _Entry(created=self._clock(), owner=owner)
        return result_id

    def path(self, result_id: str) -> Path:
        if not valid_id(result_id):
            raise ValueError("malformed result id")
        return self.root / result_id

    def commit(self, result_id: str) -> bool:
        """Mark a result complete, count its bytes, then purge (keeping this one).

        Returns False (and deletes the folder) when its owner was forgotten meanwhile.
        """
        size = _folder_size(self.path(result_id))
        with self._lock:
            entry = self._entries.get(result_id)
            kept = entry is not None and not entry.forgotten
            if kept:
                entry.size, entry.done, entry.created = size, True, self._clock()
            else:
                self._entries.pop(result_id, None)
        if not kept:
            self._delete([result_id])
            return False
        self.purge(keep=result_id)
        return True

    def discard(self, result_id: str) -> None:
        """Drop a result and its folder (failed or abandoned job)."""
        with self._lock:
            self._entries.pop(result_id, None)
        self._delete([result_id])

    def forget_owner(self, owner: str) -> int:
        """Delete every finished result of ``owner``; in-flight ones go when they commit."""
        with self._lock:
            finished = []
            for result_id, entry in list(self._entries.items()):
                if entry.owner != owner:
                    continue
                if entry.done:
                    finished.append(result_id)
                    del self._entries[result_id]
                else:
                    entry.forgotten = True
        return self._delete(finished)

    # -- lookup -----------------------------------------------------------------------------
    def file(self, result_id: str, name: str) -> Path | None:
        """Path of ``name`` in a live, finished result, or None."""
        if not valid_id(result_id) or Path(name).name != name or name.startswith("."):
            return None
        with self._lock:
            entry = self._entries.get(result_id)
            if entry is None or not entry.done or self._expired(entry):
                return None
        return self.root / result_id / name

    # -- housekeeping -----------------------------------------------------------------------
    def purge(self, keep: str | None = None) -> int:
        """Delete expired results, then the oldest until under the disk cap. Returns how many."""
        with self._lock:
            victims = [i for i, e in self._entries.items() if e.done and self._expired(e)]
            for result_id in victims:
                del self._entries[result_id]
            total = sum(e.size for e in self._entries.values())
            if total > self.max_bytes:
                by_age = sorted(
                    (e.created, i) for i, e in self._entries.items() if e.done and i != keep
                )
                for _created, result_id in by_age:
                    if total <= self.max_bytes:
                        break
                    total -= self._entries.pop(result_id).size
                    victims.append(result_id)
            strangers, self._strangers = self._strangers, []
        for child in strangers:
            log.warning("removing unexpected entry in result store: %s", child.name)
            if child.is_dir():
                _remove_tree(child)
            else:
                child.unlink(missing_ok=True)
        if victims:
            log.info("purging %d expired or over-cap result(s)", len(victims))
        return self._delete(victims)

    @property
    def count(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.done)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(e.size for e in self._entries.values())

    def _expired(self, entry: _Entry) -> bool:
        return self._clock() - entry.created > self.ttl_s

    def _delete(self, ids: list[str]) -> int:
        for result_id in ids:
            _remove_tree(self.root / result_id)
        return len(ids)

    def _adopt_existing(self) -> None:
        """Index folders left by an earlier process so that TTL and the cap cover them too."""
        for child in self.root.iterdir():
            if child.is_dir() and valid_id(child.name):
                stat = child.stat()
                self._entries[child.name] = _Entry(
                    created=stat.st_mtime, owner=None, size=_folder_size(child), done=True
                )
            else:  # not ours (or half-written junk): ids are the only names we create.
                # Removed by the first purge, never while the app is being imported.
                self._strangers.append(child)


def _folder_size(folder: Path) -> int:
    try:
        return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    except FileNotFoundError:
        return 0


def _remove_tree(folder: Path) -> None:
    """rmtree that tolerates an already-deleted folder but reports any other failure."""

    def report(_func, target, exc_info) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            log.warning("could not delete %s: %s", target, exc_info[1])

    shutil.rmtree(folder, onerror=report)
