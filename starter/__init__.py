"""The client library services use to raise and drive cases, and the command line over it."""

from starter.client import CaseClient, RequestRefusedError

__all__ = ["CaseClient", "RequestRefusedError"]
