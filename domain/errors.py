"""The one error a request can meet: refused, with a stable code. Raised by the pure rules, by
the workflow (as an ApplicationError of the same type) and by the client library, so a caller
catches one class wherever the refusal came from."""

from __future__ import annotations


class RequestRefused(ValueError):
    """A request the case will not carry out; nothing changed. `code` is a short stable
    identifier (see `domain.case_rules.REFUSAL_CODES`); the message says exactly why, naming
    the task, user or instants."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
