"""Property tests: the evaluator against a brute-force reading of DMN, and every analysis finding confirmed."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.analysis import analyse_table
from rules.engine import HitPolicyViolation, Table
from rules.findings import Kind
from tests.rules._factories import make_table

POLICIES = ["UNIQUE", "ANY", "PRIORITY", "FIRST", "COLLECT", "COLLECT SUM", "COLLECT COUNT", "COLLECT MIN",
            "COLLECT MAX", "RULE ORDER", "OUTPUT ORDER"]
OUTPUTS = ["a", "b", "c"]
INDUSTRIES = ["banks", "coal", "media"]


def _number_entry(integer: bool) -> st.SearchStrategy[str]:
    bound = st.integers(-3, 12).map(str) if integer else st.sampled_from(["-1", "0", "2.5", "5", "7", "10"])
    pairs = st.tuples(st.integers(-3, 10), st.integers(1, 6), st.sampled_from("[("), st.sampled_from("])"))
    single = st.one_of(
        st.tuples(st.sampled_from(["<", "<=", ">", ">="]), bound).map(" ".join),
        pairs.map(lambda p: f"{p[2]}{p[0]}..{p[0] + p[1]}{p[3]}"),
        bound,
    )
    listed = st.lists(single, min_size=1, max_size=2).map(", ".join)
    return st.one_of(st.just("-"), listed, listed.map(lambda s: f"not({s})"))


def _text_entry(values: list[str]) -> st.SearchStrategy[str]:
    listed = st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True).map(", ".join)
    return st.one_of(st.just("-"), listed, listed.map(lambda s: f"not({s})"))


ENTRIES = {
    "amount": _number_entry(False),
    "level": _number_entry(True),
    "band": _text_entry(["low", "medium", "high"]),
    "industry": _text_entry(INDUSTRIES),
    "expired": st.sampled_from(["-", "true", "false"]),
}
VALUES = {
    "amount": st.one_of(st.sampled_from([-1.0, 0.0, 2.5, 5.0, 7.0, 10.0]), st.floats(-5, 15, allow_nan=False)),
    "level": st.integers(-4, 14),
    "band": st.sampled_from(["low", "medium", "high"]),
    "industry": st.sampled_from([*INDUSTRIES, "other"]),
    "expired": st.booleans(),
}


@st.composite
def tables(draw: st.DrawFn, policies: list[str] = POLICIES) -> Table:
    policy = draw(st.sampled_from(policies))
    inputs = draw(st.lists(st.sampled_from(list(ENTRIES)), min_size=1, max_size=3, unique=True))
    numeric = policy in ("COLLECT SUM", "COLLECT MIN", "COLLECT MAX")
    out = st.integers(1, 9) if numeric else st.sampled_from(OUTPUTS)
    rules = draw(st.lists(st.tuples(st.fixed_dictionaries({n: ENTRIES[n] for n in inputs}), out),
                          min_size=1, max_size=6))
    return make_table(policy, inputs, rules, output_values=None if numeric else OUTPUTS,
                      output_type="number" if numeric else "string")


@st.composite
def tables_and_inputs(draw: st.DrawFn, policies: list[str] = POLICIES) -> tuple[Table, list[dict]]:
    table = draw(tables(policies))
    rows = draw(st.lists(st.fixed_dictionaries({n: VALUES[n] for n in table.spec.inputs}), min_size=1, max_size=8))
    return table, rows


def brute_force(table: Table, x: dict) -> dict:
    """DMN 1.3 hit policies read literally, over entries checked one by one."""
    spec = table.spec
    matched = [i for i, rule in enumerate(spec.rules)
               if all(table.conditions[i][k].matches(x[n]) for k, n in enumerate(spec.inputs))]
    outs = [spec.rules[i].then["out"] for i in matched]
    policy = spec.hit_policy.value
    if policy == "UNIQUE":
        if len(matched) > 1:
            raise HitPolicyViolation("t", policy, [])
        return {"out": outs[0] if outs else None}
    if policy == "ANY":
        if len(set(outs)) > 1:
            raise HitPolicyViolation("t", policy, [])
        return {"out": outs[0] if outs else None}
    if policy == "FIRST":
        return {"out": outs[0] if outs else None}
    if policy == "PRIORITY":
        return {"out": min(outs, key=OUTPUTS.index) if outs else None}
    if policy in ("COLLECT", "RULE ORDER"):
        return {"out": outs}
    if policy == "OUTPUT ORDER":
        return {"out": sorted(outs, key=OUTPUTS.index)}
    if policy == "COLLECT COUNT":
        return {"out": len(outs)}
    if not outs:
        return {"out": None}
    return {"out": {"COLLECT SUM": sum, "COLLECT MIN": min, "COLLECT MAX": max}[policy](outs)}


def _outcome(fn, *args) -> object:
    try:
        return fn(*args)
    except HitPolicyViolation:
        return "violation"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_inputs())
def test_evaluator_agrees_with_brute_force_dmn(case: tuple[Table, list[dict]]) -> None:
    table, rows = case
    for x in rows:
        expected = _outcome(brute_force, table, x)
        actual = _outcome(lambda v: table.run(v)[0], x)
        assert actual == expected, (table.spec.hit_policy, x)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_every_finding_is_confirmed_by_its_witness(table: Table) -> None:
    ids = [r.id for r in table.spec.rules]
    for finding in analyse_table(table):
        w = finding.witness
        if finding.kind is Kind.GAP:
            assert table.match(w) == [], finding.describe()
        elif finding.kind is Kind.OVERLAP:
            hits = table.match(w)
            named = [ids.index(r) for r in finding.rules]
            assert len(named) >= 2 and set(named) <= set(hits), finding.describe()
            if table.spec.hit_policy.value == "ANY":
                assert len({table.outputs[i] for i in named}) > 1
            with pytest.raises(HitPolicyViolation):
                table.run(w)
        elif finding.kind is Kind.MASKED and w is not None:
            masked, winner = (ids.index(r) for r in finding.rules[:2])
            hits = table.match(w)
            assert masked in hits and winner in hits
            assert table.run(w)[1] != [masked]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_inputs(["UNIQUE", "ANY", "PRIORITY", "FIRST"]))
def test_a_table_called_complete_and_consistent_always_decides(case: tuple[Table, list[dict]]) -> None:
    table, rows = case
    kinds = {f.kind for f in analyse_table(table)}
    if Kind.GAP in kinds or Kind.OVERLAP in kinds:
        return
    for x in rows:
        result, fired = table.run(x)  # no violation raised
        assert len(fired) == 1 and result["out"] is not None, x


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_inputs(["FIRST", "PRIORITY"]))
def test_a_rule_called_masked_never_decides(case: tuple[Table, list[dict]]) -> None:
    table, rows = case
    masked = {f.rules[0] for f in analyse_table(table) if f.kind is Kind.MASKED}
    for x in rows:
        _, fired = table.run(x)
        assert not {table.spec.rules[i].id for i in fired} & masked
