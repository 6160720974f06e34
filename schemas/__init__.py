"""Shared event models of the public contract (../shared/CONTRACT.md)."""
