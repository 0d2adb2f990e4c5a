"""A finding of validation: what is wrong, where (table and rules), and an input that shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    SCHEMA = "schema"  # the file does not fit the rule-file format or the vocabulary
    ENTRY = "entry"  # an input or output entry cannot be read
    GAP = "gap"  # some inputs match no rule of a single-hit table
    OVERLAP = "overlap"  # several rules match where the hit policy forbids it
    MASKED = "masked"  # a rule can never decide the result (FIRST, PRIORITY) or can never match
    SUITABILITY = "suitability"  # a product could be offered above the client's stated risk level
    GOLDEN = "golden"  # a golden case gives a different result
    CATALOGUE = "catalogue"  # a rule recommends an action the action catalogue does not describe


@dataclass(frozen=True)
class Finding:
    kind: Kind
    table: str
    message: str
    rules: tuple[str, ...] = ()
    witness: dict[str, object] | None = field(default=None, compare=False)

    def describe(self) -> str:
        where = f"table {self.table}" + (f", rule{'s' if len(self.rules) > 1 else ''} {', '.join(self.rules)}"
                                         if self.rules else "")
        text = f"[{self.kind.value}] {where}: {self.message}"
        if self.witness is not None:
            text += " — for example " + ", ".join(f"{k}={v!r}" for k, v in self.witness.items())
        return text

    def as_dict(self) -> dict:
        return {"kind": self.kind.value, "table": self.table, "rules": list(self.rules), "message": self.message,
                "witness": self.witness}
