"""What a client event is: a row of its raw table (the raw contract is the one definition) plus an ``event_id``.

The pydantic models are generated from :mod:`features.raw.schema`, so an event carries exactly the fields of its
raw table with the same checks (types, required values, allowed values, ranges, lots of 100). A resolved
complaint is the one event that is not a new row: it sets ``resolved_on`` of a complaint already filed.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from features.raw.schema import CASH_TRANSFERS, COMPLAINTS, CONTACTS, TRADES, Column, Table

MAX_EVENTS_PER_REQUEST = 1000
EVENT_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$",
                 description="The sender's unique id of the event: an event id seen before is accepted once.")

# kind → (raw table, its date column, the columns the event carries)
KINDS: dict[str, tuple[Table, str, tuple[str, ...]]] = {
    "cash_transfer": (CASH_TRANSFERS, "transfer_date", tuple(CASH_TRANSFERS.column_names)),
    "trade": (TRADES, "trade_date", tuple(TRADES.column_names)),
    "contact": (CONTACTS, "contact_date", tuple(CONTACTS.column_names)),
    "complaint_filed": (COMPLAINTS, "filed_on", tuple(c for c in COMPLAINTS.column_names if c != "resolved_on")),
    "complaint_resolved": (COMPLAINTS, "resolved_on", ("complaint_id", "client_id", "resolved_on")),
}
EVENT_TABLES = ("cash_transfers", "trades", "contacts", "complaints")


def _annotation(column: Column, required: bool) -> tuple[Any, Any]:
    """The pydantic type and field of one raw column, with the contract's checks."""
    if column.allowed is not None:
        base: Any = Literal[column.allowed]  # type: ignore[valid-type]
        constraints: dict[str, Any] = {}
    elif column.type == "string":
        base, constraints = str, {"min_length": 1, "max_length": 64}
    elif column.type == "date":
        base, constraints = dt.date, {}
    elif column.type == "bool":
        base, constraints = bool, {}
    elif column.type.startswith("int"):
        base, constraints = int, {"strict": False}
    else:
        base, constraints = float, {"allow_inf_nan": False}
    if column.minimum is not None:
        constraints["gt" if column.exclusive_minimum else "ge"] = column.minimum
    if column.maximum is not None:
        constraints["le"] = column.maximum
    if column.multiple_of:
        constraints["multiple_of"] = column.multiple_of
    description = f"{column.meaning} ({column.zh}{', ' + column.unit if column.unit else ''})"
    if column.nullable and not required:
        return base | None, Field(default=None, description=description, **constraints)
    return base, Field(description=description, **constraints)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def date(self) -> dt.date:
        return getattr(self, KINDS[self.kind][1])  # type: ignore[attr-defined]

    def raw_json(self) -> str:
        """The event's fields as its raw table has them (no ``event_id`` or ``kind``), as JSON with dates in ISO
        form (encoded by pydantic's own serializer: no Python object per field)."""
        return self.model_dump_json(exclude={"event_id", "kind"})


def _model(kind: str) -> type[_Event]:
    contract, _, names = KINDS[kind]
    fields: dict[str, Any] = {"event_id": (str, EVENT_ID), "kind": (Literal[kind], Field(description="Event kind."))}
    for name in names:
        fields[name] = _annotation(contract.column(name), required=(kind == "complaint_resolved"))
    title = "".join(part.title() for part in kind.split("_")) + "Event"
    return create_model(title, __base__=_Event, __doc__=f"One {kind.replace('_', ' ')}: a row of "
                        f"`{contract.name}` with its event id.", **fields)


EVENT_MODELS: dict[str, type[_Event]] = {kind: _model(kind) for kind in KINDS}
_ANY_EVENT: Any = functools.reduce(operator.or_, EVENT_MODELS.values())
ClientEvent = Annotated[_ANY_EVENT, Field(discriminator="kind")]


class EventBatch(BaseModel):
    """Up to :data:`MAX_EVENTS_PER_REQUEST` client events."""

    model_config = ConfigDict(extra="forbid")

    events: list[ClientEvent] = Field(min_length=1, description=f"Up to {MAX_EVENTS_PER_REQUEST} events.")


_ADAPTER: TypeAdapter = TypeAdapter(ClientEvent)


def parse_event(document: dict[str, Any]) -> _Event:
    """One event from its JSON document (a broker message); raises pydantic's ValidationError naming the field."""
    return _ADAPTER.validate_python(document)
