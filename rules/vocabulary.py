"""The declared vocabulary: every input a decision table may read, and the products a ruleset may offer."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from rules.unary import TermType

VOCABULARY_FILE = Path(__file__).with_name("vocabulary.yaml")


class Term(BaseModel):
    """One input: its type, allowed values (for text), where serving reads it and its degraded default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: TermType
    source: str
    description: str
    unit: str = ""
    values: tuple[str, ...] | None = None
    default: str | float | int | bool

    @model_validator(mode="after")
    def _check(self) -> Term:
        if self.values is not None and self.type != "string":
            raise ValueError("only text terms list allowed values")
        if not self.source.startswith(("indicator:", "model:", "lifecycle:")):
            raise ValueError(f"source {self.source!r} must be indicator:VIEW:NAME, model:OUTPUT or lifecycle:stage")
        return self


class Vocabulary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    terms: dict[str, Term]
    products: dict[str, int]

    def defaults(self) -> dict[str, object]:
        """The conservative value of every term, used when its source cannot be read."""
        return {name: term.default for name, term in self.terms.items()}

    def indicator_sources(self) -> dict[str, str]:
        """term → ``view:indicator`` for the terms read from the feature store."""
        return {n: t.source.split(":", 1)[1] for n, t in self.terms.items() if t.source.startswith("indicator:")}

    def model_sources(self) -> dict[str, str]:
        return {n: t.source.split(":", 1)[1] for n, t in self.terms.items() if t.source.startswith("model:")}


@lru_cache(maxsize=4)
def load_vocabulary(path: Path = VOCABULARY_FILE) -> Vocabulary:
    return Vocabulary.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
