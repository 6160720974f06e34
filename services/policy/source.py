"""Hot reload: the current policy, re-read when the file changes; a bad file keeps the old."""

from __future__ import annotations

import logging
from pathlib import Path

from services.policy.model import Policy, PolicyError, load_policy

log = logging.getLogger(__name__)


class PolicySource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._policy = load_policy(path)
        self._mtime = self._stat()
        self.last_error: str | None = None

    def _stat(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return -1.0

    def current(self) -> Policy:
        """The policy in force; picks up an edited file on the next call."""
        mtime = self._stat()
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self._policy = load_policy(self.path)
                self.last_error = None
                log.info("policy reloaded", extra={"policy_version": self._policy.version})
            except PolicyError as exc:
                self.last_error = str(exc)
                log.error("policy reload refused, keeping %s: %s", self._policy.version, exc)
        return self._policy
