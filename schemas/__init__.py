"""Event and payload models of the public contract, documented in docs/contract.md."""
