"""A private copy of the bundled policy (policy.toml and the files it names) to edit in a test."""

from __future__ import annotations

import shutil
from pathlib import Path

from services.policy.model import DEFAULT_POLICY_FILE


def copy_policy(folder: Path, name: str = "policy.toml") -> Path:
    """Copy policy.toml (as ``name``) and its triage/ folder of examples into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(DEFAULT_POLICY_FILE.parent / "triage", folder / "triage", dirs_exist_ok=True)
    target = folder / name
    shutil.copy(DEFAULT_POLICY_FILE, target)
    return target
