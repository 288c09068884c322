"""The one error a request can meet: refused, with a stable code. Raised by the pure rules, by
the workflow (as an ApplicationError of the same type) and by the client library, so a caller
catches one class wherever the refusal came from."""

from __future__ import annotations

import re
from typing import TypeGuard

from pydantic import BaseModel, ValidationError

from models.bounds import (
    KEY_MAX_LENGTH,
    KEY_PATTERN,
    REQUEST_ID_MAX_LENGTH,
    REQUEST_ID_PATTERN,
    describe_validation_error,
)


class RequestRefused(ValueError):
    """A request the case will not carry out; nothing changed. `code` is a short stable
    identifier (see `domain.case_rules.REFUSAL_CODES`); the message says exactly why, naming
    the task, user or instants."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def is_key(value: object) -> TypeGuard[str]:
    """Whether `value` is a well-formed key (models.bounds): safe to keep in an audit entry
    or a log, where anything else a message claims is not repeated."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= KEY_MAX_LENGTH
        and _KEY.fullmatch(value) is not None
    )


def is_request_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a well-formed request id (models.bounds)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= REQUEST_ID_MAX_LENGTH
        and _REQUEST_ID.fullmatch(value) is not None
    )


_KEY = re.compile(KEY_PATTERN)
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def describe_invalid(model: type[BaseModel], err: Exception) -> str:
    """Why a payload is not a valid `model`, naming each field and the rule it breaks and
    never the value sent (pydantic's own message quotes the input: personal data, or huge)."""
    if not isinstance(err, ValidationError):
        return f"not a {model.__name__} (a JSON object with its fields)"
    return f"not a valid {model.__name__}: {describe_validation_error(err)}"


__all__ = ["RequestRefused", "describe_invalid", "is_key", "is_request_id"]
