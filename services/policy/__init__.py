"""The complaint-handling policy as data: one TOML file, validated on load."""

from services.policy.model import Policy, PolicyError, load_policy
from services.policy.source import PolicySource

__all__ = ["Policy", "PolicyError", "PolicySource", "load_policy"]
