"""A length of time as configured by the organisation: a unit and a whole amount."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Unit = Literal["minutes", "hours", "days", "weeks", "months"]


class Period(BaseModel):
    """`amount` x `unit`, measured on a calendar (see domain.sla_calendar)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: Unit
    amount: int = Field(ge=0, le=100_000)

    def __str__(self) -> str:
        unit = self.unit if self.amount != 1 else self.unit.removesuffix("s")
        return f"{self.amount} {unit}"
