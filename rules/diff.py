"""What changed between two ruleset versions, rule by rule, for the reviewer who approves the new one.

Tables are matched by id and rules by id within a table. Input entries are compared by their canonical FEEL
text, so rewriting ``>= 100_000`` as ``>= 100000`` is no change, while any change to what a rule matches or
gives is. Rule order is reported too: under FIRST it decides which rule wins, under RULE ORDER and COLLECT the
order of the results.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rules.model import CaseSpec, HitPolicy, RulesetSpec, TableSpec
from rules.render import InputTerm, canonical_entry, table_inputs
from rules.unary import fmt_number
from rules.vocabulary import Vocabulary

# Change kinds (stable strings: they are written to the history and read by tools).
RULESET_CHANGED = "ruleset_changed"
DECISION_CHANGED = "decision_changed"
TABLE_ADDED = "table_added"
TABLE_REMOVED = "table_removed"
TABLE_MOVED = "table_moved"
TABLE_CHANGED = "table_changed"
RULE_ADDED = "rule_added"
RULE_REMOVED = "rule_removed"
RULE_CHANGED = "rule_changed"
RULE_MOVED = "rule_moved"
CASES_CHANGED = "golden_cases_changed"
CATALOGUE_CHANGED = "catalogue_changed"  # an action added, removed or changed, or the contact policy changed

# What moving a rule does under each hit policy, said in the change so the reviewer need not know DMN.
_ORDER_EFFECT: dict[HitPolicy, str] = {
    HitPolicy.FIRST: "the first matching rule wins",
    HitPolicy.RULE_ORDER: "results are listed in rule order",
    HitPolicy.COLLECT: "results are listed in rule order",
    HitPolicy.PRIORITY: "rule order breaks ties between equal priorities",
    HitPolicy.OUTPUT_ORDER: "rule order breaks ties between equal priorities",
}


@dataclass(frozen=True)
class Change:
    """One change: what kind, where (table, rule), a readable detail, and the values before and after."""

    kind: str
    table: str | None  # None for changes to the ruleset itself (name, description, decision mapping)
    rule: str | None
    detail: str
    before: object = None
    after: object = None
    fields: tuple[str, ...] = field(default=())  # for rule and table changes: which fields changed

    def describe(self) -> str:
        if self.kind == CATALOGUE_CHANGED:
            return f"catalogue {self.detail}"
        if self.table is None:
            where = "decision" if self.kind == DECISION_CHANGED else "ruleset"
        else:
            where = f"table {self.table}" + (f", rule {self.rule}" if self.rule is not None else "")
        return f"{where} {self.detail}"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "table": self.table, "rule": self.rule, "detail": self.detail,
                "fields": list(self.fields), "before": _jsonable(self.before), "after": _jsonable(self.after)}


@dataclass(frozen=True)
class RulesetDiff:
    """Every rule-level change from one ruleset version to another."""

    old_version: str
    new_version: str
    changes: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not self.changes

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def as_dict(self) -> dict:
        return {"old_version": self.old_version, "new_version": self.new_version, "empty": self.empty,
                "changes": [c.as_dict() for c in self.changes]}

    def describe(self) -> list[str]:
        return [c.describe() for c in self.changes]


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _show(value: object) -> str:
    """A value in a change line: text in quotes (single quotes when it holds double quotes), the rest as JSON."""
    if isinstance(value, str):
        return f"'{value}'" if '"' in value else f'"{value}"'
    return json.dumps(_jsonable(value), ensure_ascii=False)


def _value_key(value: object) -> str:
    """A comparison key for an output value: 1 and 1.0 are the same number, but true is not 1."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return fmt_number(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value_key(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_value_key(v)}" for k, v in sorted(value.items())) + "}"
    return json.dumps(value, ensure_ascii=False)


def _moved(old: Sequence[str], new: Sequence[str]) -> set[str]:
    """The ids, common to both orders, outside a longest common subsequence: the fewest moves that explain it."""
    common = set(old) & set(new)
    a = [x for x in old if x in common]
    b = [x for x in new if x in common]
    lengths = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            lengths[i][j] = lengths[i + 1][j + 1] + 1 if a[i] == b[j] else max(lengths[i + 1][j], lengths[i][j + 1])
    kept: set[str] = set()
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            kept.add(a[i])
            i, j = i + 1, j + 1
        elif lengths[i + 1][j] >= lengths[i][j + 1]:
            i += 1
        else:
            j += 1
    return common - kept


def _first_by_id(items: Sequence, key: str = "id") -> dict[str, int]:
    """id → position of its first occurrence (an id used twice is a validation error, not the diff's)."""
    out: dict[str, int] = {}
    for i, item in enumerate(items):
        out.setdefault(getattr(item, key), i)
    return out


def _inputs_by_table(spec: RulesetSpec, vocabulary: Vocabulary | None) -> dict[str, dict[str, InputTerm]]:
    out: dict[str, dict[str, InputTerm]] = {}
    for table, inputs in zip(spec.tables, table_inputs(spec, vocabulary), strict=True):
        out.setdefault(table.id, inputs)
    return out


def _ruleset_changes(old: RulesetSpec, new: RulesetSpec) -> list[Change]:
    changes = []
    for name in ("name", "description"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(Change(RULESET_CHANGED, None, None, f"changed {name}: {_show(before)} → {_show(after)}",
                                  before, after, (name,)))
    for name in ("tier", "package", "actions", "alerts"):
        before, after = getattr(old.decision, name), getattr(new.decision, name)
        if before != after:
            shown_before = _show(list(before) if isinstance(before, tuple) else before)
            shown_after = _show(list(after) if isinstance(after, tuple) else after)
            changes.append(Change(DECISION_CHANGED, None, None, f"changed {name}: {shown_before} → {shown_after}",
                                  before, after, (name,)))
    return changes


def _table_changes(old: TableSpec, new: TableSpec) -> list[Change]:
    changes = []

    def changed(name: str, before: object, after: object) -> None:
        changes.append(Change(TABLE_CHANGED, new.id, None, f"changed {name}: {_show(before)} → {_show(after)}",
                              before, after, (name,)))

    if old.name != new.name:
        changed("name", old.name, new.name)
    if old.description != new.description:
        changed("description", old.description, new.description)
    if old.hit_policy != new.hit_policy:
        changed("hit_policy", old.hit_policy.value, new.hit_policy.value)
    if old.inputs != new.inputs:
        changed("inputs", list(old.inputs), list(new.inputs))
    old_outputs = {o.name: o for o in old.outputs}
    new_outputs = {o.name: o for o in new.outputs}
    if list(old_outputs) != list(new_outputs):
        changed("outputs", list(old_outputs), list(new_outputs))
    for name in (n for n in new_outputs if n in old_outputs):
        before, after = old_outputs[name].model_dump(mode="json"), new_outputs[name].model_dump(mode="json")
        for key in ("type", "values", "descriptions"):
            if before[key] != after[key]:
                changed(f"output {name} {key}", before[key], after[key])
    if _value_key(old.default) != _value_key(new.default):
        changed("default", old.default, new.default)
    return changes


def _rule_fields(rule_when: dict, rule_then: dict, description: str, inputs: Sequence[str],
                 terms: dict[str, InputTerm]) -> dict[str, tuple[str, object]]:
    """field → (comparison key, shown value) for one rule: canonical entries, output values, description."""
    out: dict[str, tuple[str, object]] = {}
    for name in [*inputs, *sorted(set(rule_when) - set(inputs))]:
        # Allowed values are not checked here: the diff compares what was written, validation judges it.
        text = canonical_entry(rule_when[name], terms.get(name), check_values=False)[0] if name in rule_when else "-"
        out[f"when.{name}"] = (text, text)
    for name, value in rule_then.items():
        out[f"then.{name}"] = (_value_key(value), value)
    out["description"] = (description, description)
    return out


def _field_label(key: str) -> str:
    # Inputs read as the input name; outputs as "then NAME", so an output never reads like an input.
    if key.startswith("when."):
        return key[5:]
    if key.startswith("then."):
        return "then " + key[5:]
    return key


def _rules_changes(old: TableSpec, new: TableSpec, old_terms: dict[str, InputTerm],
                   new_terms: dict[str, InputTerm]) -> list[Change]:
    changes = []
    old_pos, new_pos = _first_by_id(old.rules), _first_by_id(new.rules)
    for rule_id, i in old_pos.items():
        if rule_id not in new_pos:
            rule = old.rules[i]
            changes.append(Change(RULE_REMOVED, new.id, rule_id, f"removed (was rule {i + 1}): {rule.description}",
                                  rule.model_dump(mode="json"), None))
    for rule_id, j in new_pos.items():
        rule = new.rules[j]
        if rule_id not in old_pos:
            changes.append(Change(RULE_ADDED, new.id, rule_id, f"added as rule {j + 1}: {rule.description}",
                                  None, rule.model_dump(mode="json")))
            continue
        before_rule = old.rules[old_pos[rule_id]]
        before = _rule_fields(before_rule.when, before_rule.then, before_rule.description, old.inputs, old_terms)
        after = _rule_fields(rule.when, rule.then, rule.description, new.inputs, new_terms)
        # A field only one side has: an entry for an input the other side lacks is "any", an output is null.
        missing = {k: ("-", "-") if k.startswith("when.") else ("null", None) for k in [*before, *after]}
        keys = [k for k in [*after, *(k for k in before if k not in after)]
                if before.get(k, missing[k])[0] != after.get(k, missing[k])[0]]
        if keys:
            shown_before = {k: before.get(k, missing[k])[1] for k in keys}
            shown_after = {k: after.get(k, missing[k])[1] for k in keys}
            detail = "changed: " + "; ".join(
                f"{_field_label(k)} {_show(shown_before[k])} → {_show(shown_after[k])}" for k in keys)
            changes.append(Change(RULE_CHANGED, new.id, rule_id, detail, shown_before, shown_after, tuple(keys)))
    moved = _moved([r.id for r in old.rules], [r.id for r in new.rules])
    effect = _ORDER_EFFECT.get(new.hit_policy, "rule order does not change the result")
    for rule_id in sorted(moved, key=lambda r: new_pos[r]):
        was, now = old_pos[rule_id] + 1, new_pos[rule_id] + 1
        changes.append(Change(RULE_MOVED, new.id, rule_id,
                              f"moved from rule {was} to rule {now} ({new.hit_policy.value}: {effect})", was, now))
    return changes


def _cases_changes(old: TableSpec, new: TableSpec) -> list[Change]:
    def key(case: CaseSpec) -> str:
        return _value_key(case.model_dump(mode="json"))

    before, after = Counter(key(c) for c in old.tests), Counter(key(c) for c in new.tests)
    added, removed = sum((after - before).values()), sum((before - after).values())
    if not added and not removed:
        return []
    return [Change(CASES_CHANGED, new.id, None,
                   f"golden cases changed: {added} added, {removed} removed ({len(old.tests)} → {len(new.tests)})",
                   len(old.tests), len(new.tests))]


def diff_rulesets(old: RulesetSpec, new: RulesetSpec, vocabulary: Vocabulary | None = None) -> RulesetDiff:
    """Every rule-level change from ``old`` to ``new`` (empty when they decide alike rule for rule)."""
    old_inputs, new_inputs = _inputs_by_table(old, vocabulary), _inputs_by_table(new, vocabulary)
    changes = _ruleset_changes(old, new)
    old_pos, new_pos = _first_by_id(old.tables), _first_by_id(new.tables)
    for table_id, i in old_pos.items():
        if table_id not in new_pos:
            table = old.tables[i]
            changes.append(Change(TABLE_REMOVED, table_id, None, f"removed ({table.name}, {len(table.rules)} rules)",
                                  table.model_dump(mode="json"), None))
    moved = _moved(list(old_pos), list(new_pos))
    for table_id, j in new_pos.items():
        table = new.tables[j]
        if table_id not in old_pos:
            changes.append(Change(TABLE_ADDED, table_id, None,
                                  f"added as table {j + 1} ({table.name}, {table.hit_policy.value}, "
                                  f"{len(table.rules)} rules)", None, table.model_dump(mode="json")))
            continue
        before = old.tables[old_pos[table_id]]
        if table_id in moved:
            changes.append(Change(TABLE_MOVED, table_id, None,
                                  f"moved from table {old_pos[table_id] + 1} to table {j + 1} in evaluation order",
                                  old_pos[table_id] + 1, j + 1))
        changes += _table_changes(before, table)
        changes += _rules_changes(before, table, old_inputs[table_id], new_inputs[table_id])
        changes += _cases_changes(before, table)
    changes += _catalogue_changes(old, new)
    return RulesetDiff(old.version, new.version, tuple(changes))


def _catalogue_changes(old: RulesetSpec, new: RulesetSpec) -> list[Change]:
    """The value at stake, the contact policy field by field, and action by action (``table`` is None: the
    ruleset's catalogue)."""
    before = old.catalogue.model_dump(mode="json") if old.catalogue is not None else {"contact_policy": {},
                                                                                      "actions": {}}
    after = new.catalogue.model_dump(mode="json") if new.catalogue is not None else {"contact_policy": {},
                                                                                     "actions": {}}
    changes = []
    b, a = before.get("value_at_stake"), after.get("value_at_stake")
    if b != a:
        changes.append(Change(CATALOGUE_CHANGED, None, None, f"value at stake: {_show(b)} → {_show(a)}", b, a,
                              ("value_at_stake",)))
    for name in sorted(set(before["contact_policy"]) | set(after["contact_policy"])):
        b, a = before["contact_policy"].get(name), after["contact_policy"].get(name)
        if b != a:
            changes.append(Change(CATALOGUE_CHANGED, None, None, f"contact policy {name}: {_show(b)} → {_show(a)}",
                                  b, a, (name,)))
    for action in sorted(set(before["actions"]) | set(after["actions"])):
        b, a = before["actions"].get(action), after["actions"].get(action)
        if b == a:
            continue
        if b is None:
            detail = f"action {action} added ({a['purpose']}, {a['deliverer']}, {a['channel']}, {a['cost_yuan']} yuan)"
            fields: tuple[str, ...] = ()
        elif a is None:
            detail = f"action {action} removed"
            fields = ()
        else:
            fields = tuple(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
            detail = f"action {action}: " + "; ".join(f"{k} {_show(b.get(k))} → {_show(a.get(k))}" for k in fields)
        changes.append(Change(CATALOGUE_CHANGED, None, None, detail, b, a, fields))
    return changes
