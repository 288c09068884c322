"""The one error a request can meet: refused, with a stable code. Raised by the pure rules, by
the workflow (as an ApplicationError of the same type) and by the client library, so a caller
catches one class wherever the refusal came from."""

from __future__ import annotations

import re
from typing import TypeGuard, get_args

from pydantic import BaseModel, ValidationError


class RequestRefused(ValueError):
    """A request the case will not carry out; nothing changed. `code` is a short stable
    identifier (see `domain.case_rules.REFUSAL_CODES`); the message says exactly why, naming
    the task, user or instants."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# The shape of a key a council writes (staff, role, task, topic keys) and of a request id: what
# a refusal may repeat back. Anything else is not echoed.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,99}")


def is_key(value: object) -> TypeGuard[str]:
    """Whether `value` is a well-formed key (safe to keep in an audit entry or a log)."""
    return isinstance(value, str) and _KEY.fullmatch(value) is not None


def describe_invalid(model: type[BaseModel], err: Exception) -> str:
    """Why a payload is not a valid `model`, naming each field and the rule it breaks and
    never the value sent (pydantic's own message quotes the input: personal data, or huge).
    A field the model does not have is named only when its name is a well-formed key."""
    if not isinstance(err, ValidationError):
        return f"not a {model.__name__} (a JSON object with its fields)"
    known = _field_names(model)
    problems = []
    for error in err.errors(include_input=False, include_url=False):
        names = []
        for part in error["loc"]:
            # An unknown field is named when its name is a well-formed key (a misspelling
            # such as `tsk`), never when it could be free text.
            if isinstance(part, int) or part in known or is_key(part):
                names.append(str(part))
            else:
                names.append("(field)")
        where = ".".join(names) or model.__name__
        problems.append(f"{where}: {error['msg']}")
    shown = "; ".join(problems[:10])
    more = len(problems) - 10
    return f"not a valid {model.__name__}: {shown}" + (f" (and {more} more)" if more > 0 else "")


def _field_names(model: type[BaseModel], depth: int = 3) -> set[str]:
    """The field names of `model` and of the models its fields hold (an Owner's `kind`)."""
    names = set(model.model_fields)
    if depth == 0:
        return names
    for field in model.model_fields.values():
        for kind in (field.annotation, *get_args(field.annotation)):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= _field_names(kind, depth - 1)
    return names


__all__ = ["RequestRefused", "describe_invalid", "is_key"]
