"""Value types shared by every event: money, channels, urgency, timestamps."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, PlainSerializer


def _decimal_from_contract(value: Any) -> Any:
    # The contract carries money as a decimal string; a float has already lost precision.
    if isinstance(value, float):
        raise ValueError("money amounts must be decimal strings, not floats")
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {value!r}") from exc
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_decimal_from_contract),
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="always"),
]

Timestamp = Annotated[
    AwareDatetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="always"),
]


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: Amount
    currency: str = "TWD"

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str = "TWD") -> Money:
        return cls(amount=Decimal(amount), currency=currency)


class Channel(StrEnum):
    EMAIL = "email"
    SOCIAL = "social"
    APP = "app"


class Urgency(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
