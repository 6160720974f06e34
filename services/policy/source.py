"""Hot reload: the current policy, re-read when its file or a file it names (the labeled
examples) changes; a bad edit keeps the old policy."""

from __future__ import annotations

import logging
from pathlib import Path

from services.policy.model import Policy, PolicyError, load_policy

log = logging.getLogger(__name__)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


class PolicySource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._policy = load_policy(path)
        self._mtime = self._stat()
        self.last_error: str | None = None

    def _stat(self) -> tuple[float, ...]:
        return tuple(_mtime(path) for path in (self.path, *self._policy.source_files))

    def current(self) -> Policy:
        """The policy in force; picks up an edited file on the next call."""
        mtime = self._stat()
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self._policy = load_policy(self.path)
                self._mtime = self._stat()  # the new policy may name other files
                self.last_error = None
                log.info("policy reloaded", extra={"policy_version": self._policy.version})
            except PolicyError as exc:
                self.last_error = str(exc)
                log.error("policy reload refused, keeping %s: %s", self._policy.version, exc)
        return self._policy
