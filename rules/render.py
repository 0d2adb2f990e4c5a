"""Renderings of a ruleset for people and for other tools: an HTML page for compliance review and DMN 1.3 XML.

The HTML page is one self-contained file (inline CSS, no script, no external asset) that a compliance officer can
open, print or attach to an approval: every table with its hit policy, every rule with its plain-language
description, the value legends, the golden cases and, when given, the validation findings. The DMN file carries
the same tables as DMN 1.3 decisions, chained by information requirements, so that DMN tools can display them.
Entries are shown in their canonical FEEL text, so ``>= 100_000`` and ``>= 100000`` read the same.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rules.findings import Finding
from rules.model import CaseSpec, HitPolicy, OutputSpec, RulesetSpec, TableSpec
from rules.unary import EntryError, TermType, entry_text, fmt_number, parse
from rules.vocabulary import Vocabulary, load_vocabulary

DMN_NS = "https://www.omg.org/spec/DMN/20191111/MODEL/"
SHORT = 12  # hex digits of the version shown to people and used in file names

HIT_POLICY_LETTERS: dict[HitPolicy, str] = {
    HitPolicy.UNIQUE: "U",
    HitPolicy.ANY: "A",
    HitPolicy.PRIORITY: "P",
    HitPolicy.FIRST: "F",
    HitPolicy.COLLECT: "C",
    HitPolicy.COLLECT_SUM: "C+",
    HitPolicy.COLLECT_COUNT: "C#",
    HitPolicy.COLLECT_MIN: "C<",
    HitPolicy.COLLECT_MAX: "C>",
    HitPolicy.RULE_ORDER: "R",
    HitPolicy.OUTPUT_ORDER: "O",
}

# What each hit policy means, for readers who do not know DMN.
HIT_POLICY_MEANING: dict[HitPolicy, str] = {
    HitPolicy.UNIQUE: "At most one rule may match; several matching rules are an error.",
    HitPolicy.ANY: "Several rules may match only if they give the same result.",
    HitPolicy.PRIORITY: "Of the matching rules, the one whose output comes first in the listed values wins.",
    HitPolicy.FIRST: "The first matching rule, in the order shown, gives the result.",
    HitPolicy.COLLECT: "Every matching rule contributes its output.",
    HitPolicy.COLLECT_SUM: "The outputs of every matching rule are added up.",
    HitPolicy.COLLECT_COUNT: "The result is the number of matching rules.",
    HitPolicy.COLLECT_MIN: "The result is the smallest output of the matching rules.",
    HitPolicy.COLLECT_MAX: "The result is the largest output of the matching rules.",
    HitPolicy.RULE_ORDER: "Every matching rule contributes its output, in the order shown.",
    HitPolicy.OUTPUT_ORDER: "Every matching rule contributes its output, highest-priority value first.",
}

_FEEL_TYPES: dict[str, str] = {"number": "number", "integer": "number", "string": "string", "boolean": "boolean"}


@dataclass(frozen=True)
class InputTerm:
    """What one table input is: a vocabulary term, or an output of an earlier single-hit table."""

    name: str
    type: TermType | None  # None when the input is neither (the table does not compile)
    values: tuple[str, ...] | None = None
    description: str = ""
    unit: str = ""
    from_table: str | None = None  # id of the table whose output this input is

    @property
    def vocabulary(self) -> bool:
        return self.type is not None and self.from_table is None


def table_inputs(spec: RulesetSpec, vocabulary: Vocabulary | None = None) -> list[dict[str, InputTerm]]:
    """For each table, in order, what each of its inputs is; resolved the way the evaluator chains tables."""
    vocabulary = vocabulary or load_vocabulary()
    available: dict[str, InputTerm] = {
        name: InputTerm(name, term.type, term.values, term.description, term.unit)
        for name, term in vocabulary.terms.items()}
    out: list[dict[str, InputTerm]] = []
    for table in spec.tables:
        out.append({name: available.get(name, InputTerm(name, None)) for name in table.inputs})
        if table.hit_policy.single_hit:
            for o in table.outputs:
                # The evaluator never lets an output shadow a term or an earlier output (it reports it instead).
                available.setdefault(o.name, InputTerm(o.name, o.type, o.values, f"Output of {table.name}.",
                                                       from_table=table.id))
    return out


def raw_text(raw: object) -> str:
    """An entry as written, for entries that cannot be read."""
    try:
        return entry_text(raw)
    except EntryError:
        return str(raw)


def canonical_entry(raw: object, term: InputTerm | None, check_values: bool = True) -> tuple[str, str | None]:
    """The canonical FEEL text of an entry and, when it cannot be read, why (the text is then the raw text)."""
    if term is None or term.type is None:
        return raw_text(raw), None
    try:
        return parse(raw, term.type, term.values if check_values else None).text, None
    except EntryError as e:
        return raw_text(raw), str(e)


def feel_string(value: str) -> str:
    """A FEEL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def feel_value(value: object) -> str:
    """An output value as a FEEL literal: text quoted, booleans true/false, numbers plain, missing null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return fmt_number(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(feel_value(v) for v in value) + "]"
    return feel_string(str(value))


def plain_value(value: object) -> str:
    """A value as a person reads it: text unquoted, lists comma-separated, nothing as an empty set."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return fmt_number(value)
    if isinstance(value, list | tuple):
        return ", ".join(plain_value(v) for v in value) if value else "(none)"
    return str(value)


def short_version(spec: RulesetSpec) -> str:
    return spec.version[:SHORT]


# ---------------------------------------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: -apple-system, "Segoe UI", "Noto Sans", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #1b1f24; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2.2em; border-bottom: 2px solid #d0d7de; padding-bottom: 0.2em; }
h3 { margin-bottom: 0.3em; font-size: 1em; }
code, .entry { font-family: ui-monospace, "SF Mono", Consolas, monospace; font-size: 0.92em; }
.meta { color: #57606a; } .meta span { margin-right: 1.5em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; vertical-align: top; text-align: left; }
thead th { background: #f6f8fa; }
th.input, td.input { background: #f3f8ff; } th.output, td.output { background: #f4fbf4; }
th .type { display: block; font-weight: normal; color: #57606a; font-size: 0.85em; }
td.any { color: #8c959f; text-align: center; }
td.invalid { background: #fff1f0; color: #a40e26; }
td.rule .id { font-family: ui-monospace, Consolas, monospace; font-weight: bold; display: block; }
.policy { display: inline-block; border: 1px solid #57606a; border-radius: 3px; padding: 0 0.4em;
          font-weight: bold; font-family: ui-monospace, Consolas, monospace; }
.legend dt { font-family: ui-monospace, Consolas, monospace; font-weight: bold; }
.legend dd { margin: 0 0 0.3em 1.5em; }
.findings { border: 2px solid #cf222e; border-radius: 4px; padding: 0.5em 1em; background: #fff8f8; }
.findings.clean { border-color: #1a7f37; background: #f6fff8; }
.kind { font-weight: bold; text-transform: uppercase; font-size: 0.8em; color: #cf222e; margin-right: 0.5em; }
.cases { font-size: 0.85em; }
@media print { body { margin: 0; max-width: none; } h2 { page-break-before: auto; } }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _anchor(table_id: str) -> str:
    return "table-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in table_id)


def _header_cell(term: InputTerm) -> str:
    if term.type is None:
        kind = "not in the vocabulary"
    else:
        kind = " · ".join(p for p in (term.type, term.unit) if p)
        if term.from_table is not None:
            kind += f" · from {term.from_table}"
        if term.values:
            kind += ": " + ", ".join(term.values)
    title = f' title="{_e(term.description)}"' if term.description else ""
    return f'<th class="input"{title}>{_e(term.name)}<span class="type">{_e(kind)}</span></th>'


def _output_header(output: OutputSpec) -> str:
    kind = output.type + (": " + ", ".join(output.values) if output.values else "")
    return f'<th class="output">{_e(output.name)}<span class="type">{_e(kind)}</span></th>'


def _entry_cell(raw: object, present: bool, term: InputTerm) -> str:
    if not present:
        return '<td class="input any">-</td>'
    text, problem = canonical_entry(raw, term)
    if problem is not None:
        return f'<td class="input entry invalid" title="{_e(problem)}">{_e(text)}</td>'
    return f'<td class="input entry{" any" if text == "-" else ""}">{_e(text)}</td>'


def _output_cell(output: OutputSpec, then: Mapping[str, object]) -> str:
    if output.name not in then:
        return '<td class="output invalid" title="no value for this output">(missing)</td>'
    value = then[output.name]
    meaning = output.descriptions.get(value) if isinstance(value, str) else None
    title = f' title="{_e(meaning)}"' if meaning else ""
    return f'<td class="output entry"{title}>{_e(plain_value(value))}</td>'


def _cases_html(table: TableSpec, cases: Iterable[CaseSpec]) -> str:
    cases = list(cases)
    given_names = list(table.inputs) + sorted({k for c in cases for k in c.given} - set(table.inputs))
    expect_names = [o.name for o in table.outputs]
    expect_names += sorted({k for c in cases for k in c.expect} - set(expect_names))
    head = ("<tr><th>Case</th>" + "".join(f'<th class="input">{_e(n)}</th>' for n in given_names)
            + "".join(f'<th class="output">{_e(n)}</th>' for n in expect_names) + "</tr>")
    rows = []
    for case in cases:
        cells = [f"<td>{_e(case.description)}</td>"]
        cells += [f'<td class="input entry">{_e(plain_value(case.given[n]))}</td>' if n in case.given
                  else '<td class="input any">-</td>' for n in given_names]
        cells += [f'<td class="output entry">{_e(plain_value(case.expect[n]))}</td>' if n in case.expect
                  else '<td class="output any">-</td>' for n in expect_names]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<h3>Golden cases ({len(cases)})</h3>\n<table class="cases"><thead>{head}</thead><tbody>\n'
            + "\n".join(rows) + "\n</tbody></table>")


def _table_html(table: TableSpec, inputs: Mapping[str, InputTerm]) -> str:
    policy = table.hit_policy
    parts = [
        f'<section id="{_e(_anchor(table.id))}">',
        f"<h2>{_e(table.name)}</h2>",
        f'<p class="meta"><span>Table <code>{_e(table.id)}</code></span>'
        f'<span>Hit policy <span class="policy" title="{_e(policy.value)}">{_e(HIT_POLICY_LETTERS[policy])}</span> '
        f"{_e(policy.value)}: {_e(HIT_POLICY_MEANING[policy])}</span>"
        f"<span>{len(table.rules)} rule{'s' if len(table.rules) != 1 else ''}</span></p>",
        f"<p>{_e(table.description)}</p>",
    ]
    head = ("<tr>" + "".join(_header_cell(inputs[n]) for n in table.inputs)
            + "".join(_output_header(o) for o in table.outputs) + "<th>Rule</th></tr>")
    rows = []
    for rule in table.rules:
        cells = [_entry_cell(rule.when.get(n), n in rule.when, inputs[n]) for n in table.inputs]
        cells += [_output_cell(o, rule.then) for o in table.outputs]
        cells.append(f'<td class="rule"><span class="id">{_e(rule.id)}</span>{_e(rule.description)}</td>')
        stray = sorted(set(rule.when) - set(table.inputs))
        if stray:
            # Shown rather than dropped: the evaluator refuses such a rule, and the reader should see why.
            cells[-1] = cells[-1].replace(
                "</td>", f'<br><span class="kind">entries for unknown inputs: {_e(", ".join(stray))}</span></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    parts.append(f'<table class="rules"><thead>{head}</thead><tbody>\n' + "\n".join(rows) + "\n</tbody></table>")
    if table.default is not None:
        default = ", ".join(f"{n} = {plain_value(v)}" for n, v in table.default.items())
        parts.append(f"<p>When no rule matches: <code>{_e(default)}</code></p>")
    for output in table.outputs:
        if output.descriptions:
            items = "".join(f"<dt>{_e(value)}</dt><dd>{_e(text)}</dd>" for value, text in output.descriptions.items())
            parts.append(f'<h3>Values of {_e(output.name)}</h3>\n<dl class="legend">{items}</dl>')
    if table.tests:
        parts.append(_cases_html(table, table.tests))
    parts.append("</section>")
    return "\n".join(parts)


def _decision_html(spec: RulesetSpec) -> str:
    def refs(values: Iterable[str]) -> str:
        links = []
        for ref in values:
            table_id = ref.partition(".")[0]
            links.append(f'<a href="#{_e(_anchor(table_id))}"><code>{_e(ref)}</code></a>')
        return ", ".join(links) or "(none)"

    d = spec.decision
    rows = [("Service tier", [d.tier]), ("Service package", [d.package]), ("Actions", d.actions),
            ("Alerts", d.alerts)]
    body = "".join(f"<tr><th>{_e(label)}</th><td>{refs(values)}</td></tr>" for label, values in rows)
    return ("<h2>Decision</h2>\n<p>The decision is made of these table outputs (<code>TABLE.OUTPUT</code>); "
            f"tables are evaluated in the order below.</p>\n<table class=\"decision\"><tbody>{body}</tbody></table>")


def _findings_html(spec: RulesetSpec, findings: list[Finding]) -> str:
    if not findings:
        return '<section class="findings clean"><h2>Findings</h2><p>Validation found nothing to report.</p></section>'
    order = [t.id for t in spec.tables]
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.table, []).append(f)
    names = {t.id: t.name for t in spec.tables}
    parts = [f'<section class="findings"><h2>Findings ({len(findings)})</h2>']
    for table_id in sorted(groups, key=lambda t: (order.index(t) if t in order else len(order), t)):
        if table_id in names:
            title = f'<a href="#{_e(_anchor(table_id))}">{_e(names[table_id])}</a> (<code>{_e(table_id)}</code>)'
        else:
            title = f"<code>{_e(table_id)}</code>"
        items = []
        for f in groups[table_id]:
            rules = f" rule{'s' if len(f.rules) > 1 else ''} <code>{_e(', '.join(f.rules))}</code>:" if f.rules else ""
            text = f'<span class="kind">{_e(f.kind.value)}</span>{rules} {_e(f.message)}'
            if f.witness:
                witness = ", ".join(f"{k} = {plain_value(v)}" for k, v in f.witness.items())
                text += f"<br>For example: <code>{_e(witness)}</code>"
            items.append(f"<li>{text}</li>")
        parts.append(f"<h3>{title}</h3>\n<ul>{''.join(items)}</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(spec: RulesetSpec, findings: list[Finding] | None = None, title: str | None = None, *,
                vocabulary: Vocabulary | None = None) -> str:
    """One self-contained HTML page showing a ruleset (and its findings) to compliance reviewers."""
    vocabulary = vocabulary or load_vocabulary()
    version = spec.version
    title = title or f"{spec.name} — ruleset {version[:SHORT]}"
    inputs = table_inputs(spec, vocabulary)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(spec.name)}</h1>",
        f"<p>{_e(spec.description)}</p>" if spec.description else "",
        f'<p class="meta"><span>Version <code title="{_e(version)}">{_e(version[:SHORT])}</code></span>'
        f"<span>{len(spec.tables)} tables, {sum(len(t.rules) for t in spec.tables)} rules</span></p>",
        "</header>",
    ]
    if findings is not None:
        parts.append(_findings_html(spec, findings))
    parts.append(_decision_html(spec))
    toc = "".join(f'<li><a href="#{_e(_anchor(t.id))}">{_e(t.name)}</a> '
                  f'<span class="policy">{_e(HIT_POLICY_LETTERS[t.hit_policy])}</span></li>' for t in spec.tables)
    parts.append(f"<ol>{toc}</ol>")
    parts += [_table_html(t, ins) for t, ins in zip(spec.tables, inputs, strict=True)]
    parts += ["</body>", "</html>"]
    return "\n".join(p for p in parts if p) + "\n"


def render_sections(spec: RulesetSpec, findings: list[Finding] | None = None, *,
                    vocabulary: Vocabulary | None = None) -> str:
    """The review page's content without the page around it (findings, decision, contents, tables), for embedding
    in another page; the same markup and classes as :func:`render_html`."""
    vocabulary = vocabulary or load_vocabulary()
    parts = [_findings_html(spec, findings)] if findings is not None else []
    parts.append(_decision_html(spec))
    toc = "".join(f'<li><a href="#{_e(_anchor(t.id))}">{_e(t.name)}</a> '
                  f'<span class="policy">{_e(HIT_POLICY_LETTERS[t.hit_policy])}</span> {_e(t.hit_policy.value)}</li>'
                  for t in spec.tables)
    parts.append(f'<ol class="toc">{toc}</ol>')
    parts += [_table_html(t, ins) for t, ins in zip(spec.tables, table_inputs(spec, vocabulary), strict=True)]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------- DMN


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str | None) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def _text(parent: ET.Element, tag: str, text: str, **attrs: str | None) -> ET.Element:
    """A DMN element holding its FEEL in a ``<text>`` child (entries, expressions, value lists)."""
    element = _sub(parent, tag, **attrs)
    _sub(element, "text", text)
    return element


class _Ids:
    """Document-unique XML ids (NCNames) made from rule-file identifiers."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    @staticmethod
    def _name(parts: tuple[str, ...]) -> str:
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in "_".join(parts))
        return base if base and (base[0].isalpha() or base[0] == "_") else "_" + base

    def prefer(self, candidate: str, *fallback: str) -> str:
        """``candidate`` made an NCName if still free, else a unique id made from ``fallback``."""
        name = self._name((candidate,))
        if name in self.used:
            return self(*fallback)
        self.used.add(name)
        return name

    def __call__(self, *parts: str) -> str:
        base = self._name(parts)
        candidate, n = base, 2
        while candidate in self.used:
            candidate, n = f"{base}_{n}", n + 1
        self.used.add(candidate)
        return candidate


def render_dmn(spec: RulesetSpec, vocabulary: Vocabulary | None = None) -> str:
    """The ruleset as DMN 1.3 XML: one decision table per table, chained by information requirements."""
    vocabulary = vocabulary or load_vocabulary()
    version = spec.version
    ids = _Ids()
    # The DMN namespace is written as a plain xmlns attribute: ElementTree's default_namespace option refuses
    # unqualified attributes, and every DMN attribute is unqualified.
    root = ET.Element("definitions", {"xmlns": DMN_NS, "id": ids("ruleset", version[:SHORT]), "name": spec.name,
                                      "namespace": f"urn:brokerage-decision-engine:ruleset:{version}"})
    d = spec.decision
    _sub(root, "description", "\n".join(filter(None, [
        spec.description, f"Version {version}.",
        f"Decision: tier {d.tier}; package {d.package}; actions {', '.join(d.actions) or '-'}; "
        f"alerts {', '.join(d.alerts) or '-'}."])))

    inputs = table_inputs(spec, vocabulary)
    # Decisions take the table ids before anything else can, so that hrefs read as the table ids.
    decision_ids = [ids(t.id) for t in spec.tables]
    decision_of: dict[str, str] = {}
    for table, decision_id in zip(spec.tables, decision_ids, strict=True):
        decision_of.setdefault(table.id, decision_id)
    input_ids: dict[str, str] = {}
    for per_table in inputs:
        for term in per_table.values():
            if term.vocabulary and term.name not in input_ids:
                input_ids[term.name] = ids("input", term.name)
                data = _sub(root, "inputData", id=input_ids[term.name], name=term.name)
                if term.description:
                    _sub(data, "description", term.description + (f" ({term.unit})" if term.unit else ""))
                _sub(data, "variable", id=ids("input", term.name, "variable"), name=term.name,
                     typeRef=_FEEL_TYPES[str(term.type)])

    for table, decision_id, per_table in zip(spec.tables, decision_ids, inputs, strict=True):
        decision = _sub(root, "decision", id=decision_id, name=table.name)
        _sub(decision, "description", table.description)
        required_tables: list[str] = []
        for name in table.inputs:
            term = per_table[name]
            if term.from_table is not None and term.from_table not in required_tables:
                required_tables.append(term.from_table)
        for table_id in required_tables:
            requirement = _sub(decision, "informationRequirement", id=ids(decision_id, "requires", table_id))
            _sub(requirement, "requiredDecision", href=f"#{decision_of[table_id]}")
        for name in table.inputs:
            if per_table[name].vocabulary:
                requirement = _sub(decision, "informationRequirement", id=ids(decision_id, "reads", name))
                _sub(requirement, "requiredInput", href=f"#{input_ids[name]}")
        _decision_table(decision, table, per_table, ids, decision_id)

    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _decision_table(decision: ET.Element, table: TableSpec, inputs: Mapping[str, InputTerm], ids: _Ids,
                    decision_id: str) -> None:
    policy = table.hit_policy
    aggregator = policy.aggregator
    dt = _sub(decision, "decisionTable", id=ids(decision_id, "table"),
              hitPolicy="COLLECT" if aggregator else policy.value, aggregation=aggregator)
    for name in table.inputs:
        term = inputs[name]
        clause = _sub(dt, "input", id=ids(decision_id, "in", name), label=name)
        expression = _sub(clause, "inputExpression", id=ids(decision_id, "in", name, "expr"),
                          typeRef=_FEEL_TYPES[term.type] if term.type else None)
        _sub(expression, "text", name)
        if term.type == "string" and term.values:
            _text(clause, "inputValues", ",".join(feel_string(v) for v in term.values),
                  id=ids(decision_id, "in", name, "values"))
    for output in table.outputs:
        clause = _sub(dt, "output", id=ids(decision_id, "out", output.name), name=output.name,
                      typeRef=_FEEL_TYPES[output.type])
        if output.values:
            _text(clause, "outputValues", ",".join(feel_string(v) for v in output.values),
                  id=ids(decision_id, "out", output.name, "values"))
        if table.default is not None and output.name in table.default:
            _text(clause, "defaultOutputEntry", feel_value(table.default[output.name]),
                  id=ids(decision_id, "out", output.name, "default"))
    for rule in table.rules:
        # Rule ids are unique within a table only; another table's rule of the same id gets the table as prefix.
        rule_id = ids.prefer(rule.id, decision_id, rule.id)
        element = _sub(dt, "rule", id=rule_id)
        _sub(element, "description", rule.description)
        for name in table.inputs:
            text = canonical_entry(rule.when[name], inputs[name])[0] if name in rule.when else "-"
            _text(element, "inputEntry", text, id=ids(rule_id, "in", name))
        for output in table.outputs:
            _text(element, "outputEntry", feel_value(rule.then.get(output.name)), id=ids(rule_id, "out", output.name))


def write_rendering(spec: RulesetSpec, out_dir: Path, findings: list[Finding] | None = None, *,
                    vocabulary: Vocabulary | None = None) -> tuple[Path, Path]:
    """Write ``ruleset-<short version>.html`` and ``.dmn`` into ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"ruleset-{short_version(spec)}"
    html_path, dmn_path = out_dir / f"{stem}.html", out_dir / f"{stem}.dmn"
    html_path.write_text(render_html(spec, findings, vocabulary=vocabulary), encoding="utf-8")
    dmn_path.write_text(render_dmn(spec, vocabulary), encoding="utf-8")
    return html_path, dmn_path
