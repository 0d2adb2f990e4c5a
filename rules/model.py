"""What a rule file says: decision tables, rules, golden cases and the ruleset that chains them.

A ruleset is a folder: ``ruleset.yaml`` names the tables in evaluation order and says which outputs make the
decision (tier, package, actions, alerts); each table is one YAML file next to it. A ruleset version is the
SHA-256 of its canonical JSON form: YAML layout and comments do not change it; any change to what is written in a
rule — even ``5_000_000`` rewritten as ``5000000`` — does, because the version names exactly what was approved.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rules.catalogue import Catalogue, ValueAtStake
from rules.errors import RuleFileError
from rules.unary import TermType

MANIFEST = "ruleset.yaml"
CATALOGUE_FILE = "actions.yaml"
BUNDLED = Path(__file__).with_name("bundled")


class HitPolicy(StrEnum):
    UNIQUE = "UNIQUE"
    ANY = "ANY"
    PRIORITY = "PRIORITY"
    FIRST = "FIRST"
    COLLECT = "COLLECT"
    COLLECT_SUM = "COLLECT SUM"
    COLLECT_COUNT = "COLLECT COUNT"
    COLLECT_MIN = "COLLECT MIN"
    COLLECT_MAX = "COLLECT MAX"
    RULE_ORDER = "RULE ORDER"
    OUTPUT_ORDER = "OUTPUT ORDER"

    @property
    def single_hit(self) -> bool:
        return self in (HitPolicy.UNIQUE, HitPolicy.ANY, HitPolicy.PRIORITY, HitPolicy.FIRST)

    @property
    def aggregator(self) -> str | None:
        return self.value.split(" ", 1)[1] if self.value.startswith("COLLECT ") else None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OutputSpec(_Frozen):
    """A typed output column; for text outputs ``values`` lists the allowed values in priority order."""

    name: str
    type: TermType
    values: tuple[str, ...] | None = None
    descriptions: dict[str, str] = Field(default_factory=dict)


class RuleSpec(_Frozen):
    id: str
    description: str = Field(min_length=1)
    when: dict[str, Any] = Field(default_factory=dict)  # input → entry; an omitted input is "-"
    then: dict[str, Any]


class CaseSpec(_Frozen):
    """A golden case: given these inputs, the table must give exactly this result."""

    description: str = Field(min_length=1)
    given: dict[str, Any]
    expect: dict[str, Any]


class TableSpec(_Frozen):
    id: str
    name: str
    description: str = Field(min_length=1)
    hit_policy: HitPolicy
    inputs: tuple[str, ...]
    outputs: tuple[OutputSpec, ...] = Field(min_length=1)
    default: dict[str, Any] | None = None
    rules: tuple[RuleSpec, ...] = Field(min_length=1)
    tests: tuple[CaseSpec, ...] = ()

    @field_validator("hit_policy", mode="before")
    @classmethod
    def _policy(cls, v: object) -> object:
        return " ".join(v.upper().split()) if isinstance(v, str) else v


class DecisionSpec(_Frozen):
    """Which table outputs make the decision: ``TABLE.OUTPUT`` references."""

    tier: str
    package: str
    actions: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()


class RulesetSpec(_Frozen):
    name: str
    description: str = ""
    tables: tuple[TableSpec, ...] = Field(min_length=1)
    decision: DecisionSpec
    event_triggered: tuple[str, ...] = Field(
        default=(), description="Tables evaluated at once when a client event changes the client's indicators; "
        "their new alerts go to the client's broker.")
    catalogue: Catalogue | None = None  # the actions and the contact policy (``actions.yaml``)

    @model_validator(mode="after")
    def _triggered_tables_exist(self) -> RulesetSpec:
        known = {t.id for t in self.tables}
        unknown = [t for t in self.event_triggered if t not in known]
        if unknown:
            raise ValueError(f"event_triggered names tables that are not in the ruleset: {', '.join(unknown)}")
        return self

    def canonical(self) -> dict:
        # A ruleset without event-triggered tables or a catalogue, or whose catalogue values a kept client at its
        # forward commission, keeps the canonical form (and so the version) it had before they existed.
        exclude: dict = {name: True for name, absent in (("event_triggered", not self.event_triggered),
                                                        ("catalogue", self.catalogue is None)) if absent}
        if self.catalogue is not None and self.catalogue.value_at_stake == ValueAtStake.FORWARD_COMMISSION:
            exclude["catalogue"] = {"value_at_stake": True}
        return self.model_dump(mode="json", exclude=exclude or None)

    @property
    def version(self) -> str:
        return content_hash(self.canonical())

    def table(self, table_id: str) -> TableSpec:
        for t in self.tables:
            if t.id == table_id:
                return t
        raise KeyError(table_id)


def content_hash(canonical: dict) -> str:
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _describe(error: ValidationError, doc: dict) -> str:
    """Turn pydantic's locations into table and rule names a compliance officer recognises."""
    problems = []
    for e in error.errors():
        loc = list(e["loc"])
        where = []
        if loc[:1] == ["rules"] and len(loc) > 1 and isinstance(loc[1], int):
            rules = doc.get("rules") or []
            rule = rules[loc[1]] if loc[1] < len(rules) and isinstance(rules[loc[1]], dict) else {}
            where.append(f"rule {rule.get('id', '#' + str(loc[1] + 1))}")
            loc = loc[2:]
        field = ".".join(str(p) for p in loc)
        problems.append(" ".join([*where, f"{field}: {e['msg']}" if field else e["msg"]]))
    return "; ".join(problems)


def _read_yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuleFileError(str(path), "file not found") from None
    except yaml.YAMLError as e:
        raise RuleFileError(str(path), f"not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise RuleFileError(str(path), "expected a mapping at the top of the file")
    return doc


def load_table(path: Path) -> TableSpec:
    doc = _read_yaml(path)
    where = f"{path.name} (table {doc.get('id', '?')})"
    try:
        return TableSpec.model_validate(doc)
    except ValidationError as e:
        raise RuleFileError(where, _describe(e, doc)) from None


def load_ruleset(folder: Path = BUNDLED) -> RulesetSpec:
    """Read a ruleset folder; raises :class:`RuleFileError` naming the file, table and rule at fault."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    manifest = _read_yaml(folder / MANIFEST)
    files = manifest.get("tables")
    if not isinstance(files, list) or not files:
        raise RuleFileError(f"{folder / MANIFEST}", "tables: list the table files in evaluation order")
    tables = [load_table(folder / str(name)) for name in files]
    doc = {**manifest, "tables": tables}
    if isinstance(manifest.get("catalogue"), str):
        path = folder / manifest["catalogue"]
        try:
            doc["catalogue"] = Catalogue.model_validate(_read_yaml(path))
        except ValidationError as e:
            raise RuleFileError(f"{path.name} (action catalogue)", _describe(e, {})) from None
    try:
        return RulesetSpec.model_validate(doc)
    except ValidationError as e:
        raise RuleFileError(str(folder / MANIFEST), _describe(e, manifest)) from None


def ruleset_from_canonical(canonical: dict) -> RulesetSpec:
    return RulesetSpec.model_validate(canonical)


def write_ruleset(spec: RulesetSpec, folder: Path) -> Path:
    """Write a ruleset as a folder of YAML files (to edit a stored version as a candidate)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for table in spec.tables:
        name = f"{table.id}.yaml"
        names.append(name)
        doc = table.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        doc = {"id": table.id, "name": table.name, "description": table.description,
               "hit_policy": table.hit_policy.value, **doc}
        (folder / name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110),
                                   encoding="utf-8")
    manifest = {"name": spec.name, "description": spec.description, "tables": names,
                "decision": spec.decision.model_dump(mode="json")}
    if spec.event_triggered:
        manifest["event_triggered"] = list(spec.event_triggered)
    if spec.catalogue is not None:
        manifest["catalogue"] = CATALOGUE_FILE
        (folder / CATALOGUE_FILE).write_text(
            yaml.safe_dump(spec.catalogue.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=110),
            encoding="utf-8")
    (folder / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=110),
                                   encoding="utf-8")
    return folder
