"""The HTML page and the DMN export of a ruleset: what a compliance reviewer and a DMN tool would see."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rules.findings import Finding, Kind
from rules.model import RulesetSpec
from rules.render import DMN_NS, render_dmn, render_html, write_rendering
from tests.rules._factories import bundled, edited, rule_doc, table_doc

NS = {"dmn": DMN_NS}




def parse_dmn(spec: RulesetSpec) -> ET.Element:
    return ET.fromstring(render_dmn(spec))


def decision(root: ET.Element, table_id: str) -> ET.Element:
    found = root.find(f"dmn:decision[@id='{table_id}']", NS)
    assert found is not None, f"no decision {table_id}"
    return found


def rule_texts(root: ET.Element, table_id: str, rule_id: str) -> tuple[list[str], list[str]]:
    rule = decision(root, table_id).find(f"dmn:decisionTable/dmn:rule[@id='{rule_id}']", NS)
    assert rule is not None
    return ([e.findtext("dmn:text", namespaces=NS) for e in rule.findall("dmn:inputEntry", NS)],
            [e.findtext("dmn:text", namespaces=NS) for e in rule.findall("dmn:outputEntry", NS)])


# ---------------------------------------------------------------------------------------------------------- HTML


def test_html_shows_every_table_and_rule_with_its_description() -> None:
    spec = bundled()
    page = render_html(spec)
    assert page.startswith("<!DOCTYPE html>")
    for table in spec.tables:
        assert f"<h2>{table.name}</h2>" in page
        assert f"<code>{table.id}</code>" in page
        for rule in table.rules:
            assert f'<span class="id">{rule.id}</span>' in page
            assert html.escape(rule.description) in page


def test_html_shows_hit_policy_letter_and_name() -> None:
    page = render_html(bundled())
    service_tier = page[page.index('<section id="table-service_tier">'):]
    assert re.search(r'<span class="policy" title="PRIORITY">P</span> PRIORITY', service_tier)
    assert '<span class="policy" title="UNIQUE">U</span>' in page
    assert '<span class="policy" title="COLLECT">C</span>' in page
    assert '<span class="policy" title="RULE ORDER">R</span>' in page


@pytest.mark.parametrize(("policy", "letter"), [("COLLECT SUM", "C+"), ("COLLECT COUNT", "C#"),
                                                ("COLLECT MIN", "C&lt;"), ("COLLECT MAX", "C&gt;"),
                                                ("OUTPUT ORDER", "O"), ("FIRST", "F"), ("ANY", "A")])
def test_html_hit_policy_letters(policy: str, letter: str) -> None:
    spec = edited(lambda d: table_doc(d, "suitability_alerts").update(hit_policy=policy))
    assert f'<span class="policy" title="{policy}">{letter}</span>' in render_html(spec)


def test_html_shows_canonical_entries_not_the_written_form() -> None:
    page = render_html(bundled())
    assert "&gt;= 5000000" in page
    assert "[1000000..5000000)" in page
    assert "5_000_000" not in page
    assert "&quot;institution&quot;" in page  # written `institution`, shown as the FEEL text "institution"


def test_html_shows_an_unreadable_entry_as_written() -> None:
    spec = edited(lambda d: rule_doc(d, "service_tier", "TIER-SMALL")["when"].update(total_assets="below 200k"))
    page = render_html(spec)
    assert re.search(r'<td class="input entry invalid" title="[^"]+">below 200k</td>', page)


def test_html_headers_show_type_and_unit_from_the_vocabulary() -> None:
    page = render_html(bundled())
    assert re.search(r"total_assets<span class=\"type\">number · yuan</span>", page)
    assert "tier<span class=\"type\">string · from service_tier: premier, large, medium, small</span>" in page


def test_html_escapes_everything_written_in_the_rule_files() -> None:
    def inject(d: dict) -> None:
        d["name"] = "Policy <b>bold</b>"
        rule_doc(d, "service_tier", "TIER-SMALL")["description"] = "<script>alert('x')</script> & more"

    page = render_html(edited(inject))
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "<h1>Policy &lt;b&gt;bold&lt;/b&gt;</h1>" in page


def test_html_is_self_contained_and_renders_chinese() -> None:
    spec = bundled()
    page = render_html(spec)
    assert '<meta charset="utf-8">' in page
    assert "<style>" in page
    for external in ("<script", "<link", "src=", "@import", "url("):
        assert external not in page
    assert "特级客户" in page
    assert "(特级/大/中/小客户)" in page


def test_html_shows_short_version_with_full_version_in_title() -> None:
    spec = bundled()
    page = render_html(spec, title="Candidate for review")
    assert f'<code title="{spec.version}">{spec.version[:12]}</code>' in page
    assert "<title>Candidate for review</title>" in page


def test_html_shows_decision_mapping() -> None:
    page = render_html(bundled())
    decision_part = page[page.index("<h2>Decision</h2>"):page.index('<section id="table-')]
    for ref in ("service_tier.tier", "service_package.package", "retention_actions.action", "marketing.action",
                "product_offers.offer", "suitability_alerts.alert", "broker_alerts.alert"):
        assert f"<code>{ref}</code>" in decision_part


def test_html_legend_and_golden_cases_follow_their_table() -> None:
    spec = bundled()
    page = render_html(spec)
    marketing = page[page.index('<section id="table-marketing">'):page.index('<section id="table-product_offers">')]
    assert "<h3>Values of action</h3>" in marketing
    assert "<dt>research_subscription</dt><dd>Offer a research subscription.</dd>" in marketing
    assert "<h3>Golden cases (3)</h3>" in marketing
    for case in spec.table("marketing").tests:
        assert case.description in marketing
    assert "new_stock_research, industry_research" in marketing  # an expected list, readable


def test_html_shows_the_default_of_a_table() -> None:
    spec = edited(lambda d: table_doc(d, "service_package").update(default={"package": "self_service"}))
    assert "When no rule matches: <code>package = self_service</code>" in render_html(spec)


def test_html_lists_findings_first_grouped_by_table_with_witness() -> None:
    findings = [
        Finding(Kind.OVERLAP, "service_package", "rules <overlap>", ("PKG-LARGE", "PKG-LARGE-AT-RISK"),
                witness={"tier": "large", "churn_band": "high"}),
        Finding(Kind.GAP, "service_tier", "no rule matches", witness={"total_assets": 150000.0}),
        Finding(Kind.GOLDEN, "service_tier", "case 2 gives large"),
    ]
    page = render_html(bundled(), findings)
    section = page[page.index('<section class="findings">'):page.index("</section>")]
    assert page.index('<section class="findings">') < page.index("<h2>Decision</h2>")
    assert "Findings (3)" in section
    # Grouped in table order, whatever the order of the findings.
    assert section.index("service_tier") < section.index("service_package")
    assert "For example: <code>total_assets = 150000</code>" in section
    assert "For example: <code>tier = large, churn_band = high</code>" in section
    assert "rules &lt;overlap&gt;" in section
    assert "<code>PKG-LARGE, PKG-LARGE-AT-RISK</code>" in section


def test_html_findings_section_only_when_findings_are_given() -> None:
    assert "Findings" not in render_html(bundled())
    assert "Validation found nothing to report." in render_html(bundled(), [])


# ----------------------------------------------------------------------------------------------------------- DMN


def test_dmn_is_dmn13_xml_with_one_decision_per_table() -> None:
    spec = bundled()
    text = render_dmn(spec)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text)
    assert root.tag == f"{{{DMN_NS}}}definitions"
    assert root.get("name") == spec.name
    assert root.get("id") and root.get("namespace")
    decisions = root.findall("dmn:decision", NS)
    assert [(d.get("id"), d.get("name")) for d in decisions] == [(t.id, t.name) for t in spec.tables]


def test_dmn_ids_are_unique() -> None:
    ids = [e.get("id") for e in parse_dmn(bundled()).iter() if e.get("id") is not None]
    assert len(ids) == len(set(ids))


def test_dmn_hit_policies_of_the_bundled_tables() -> None:
    root = parse_dmn(bundled())
    policies = {d.get("id"): d.find("dmn:decisionTable", NS).get("hitPolicy") for d in root.findall("dmn:decision", NS)}
    assert policies == {"service_tier": "PRIORITY", "service_package": "UNIQUE", "retention_actions": "COLLECT",
                        "win_back_actions": "COLLECT", "marketing": "COLLECT", "product_offers": "COLLECT",
                        "suitability_alerts": "COLLECT", "broker_alerts": "RULE ORDER", "event_alerts": "COLLECT"}
    assert all(d.find("dmn:decisionTable", NS).get("aggregation") is None for d in root.findall("dmn:decision", NS))


@pytest.mark.parametrize(("policy", "hit_policy", "aggregation"), [
    ("COLLECT SUM", "COLLECT", "SUM"), ("COLLECT COUNT", "COLLECT", "COUNT"), ("COLLECT MIN", "COLLECT", "MIN"),
    ("COLLECT MAX", "COLLECT", "MAX"), ("FIRST", "FIRST", None), ("OUTPUT ORDER", "OUTPUT ORDER", None),
])
def test_dmn_hit_policy_and_aggregation(policy: str, hit_policy: str, aggregation: str | None) -> None:
    spec = edited(lambda d: table_doc(d, "suitability_alerts").update(hit_policy=policy))
    table = decision(parse_dmn(spec), "suitability_alerts").find("dmn:decisionTable", NS)
    assert table.get("hitPolicy") == hit_policy
    assert table.get("aggregation") == aggregation


def test_dmn_rules_have_one_entry_per_input_and_output() -> None:
    spec = bundled()
    root = parse_dmn(spec)
    for t in spec.tables:
        table = decision(root, t.id).find("dmn:decisionTable", NS)
        assert [i.get("label") for i in table.findall("dmn:input", NS)] == list(t.inputs)
        assert [o.get("name") for o in table.findall("dmn:output", NS)] == [o.name for o in t.outputs]
        rules = table.findall("dmn:rule", NS)
        assert [r.get("id") for r in rules] == [r.id for r in t.rules]
        assert [r.findtext("dmn:description", namespaces=NS) for r in rules] == [r.description for r in t.rules]
        for rule in rules:
            assert len(rule.findall("dmn:inputEntry", NS)) == len(t.inputs)
            assert len(rule.findall("dmn:outputEntry", NS)) == len(t.outputs)


def test_dmn_entries_are_feel_text() -> None:
    root = parse_dmn(bundled())
    assert rule_texts(root, "service_tier", "TIER-PREMIER-ASSETS") == ([">= 5000000", "-", "-"], ['"premier"'])
    assert rule_texts(root, "service_tier", "TIER-LARGE-INSTITUTION") == (["-", "-", '"institution"'], ['"large"'])
    assert rule_texts(root, "service_package", "PKG-LARGE") == (['"large"', 'not("high")'], ['"group_advisory"'])
    assert rule_texts(root, "product_offers", "OFFER-STAR-MARKET") == (
        ["5", "false", '"aggressive"', '"premier", "large"'], ['"star_market_access"'])


def test_dmn_input_and_output_clauses_are_typed() -> None:
    table = decision(parse_dmn(bundled()), "service_tier").find("dmn:decisionTable", NS)
    expressions = {i.get("label"): i.find("dmn:inputExpression", NS) for i in table.findall("dmn:input", NS)}
    assert {k: e.get("typeRef") for k, e in expressions.items()} == {
        "total_assets": "number", "value_percentile": "number", "client_type": "string"}
    assert expressions["client_type"].findtext("dmn:text", namespaces=NS) == "client_type"
    client_type = table.find("dmn:input[@label='client_type']", NS)
    assert client_type.findtext("dmn:inputValues/dmn:text", namespaces=NS) == (
        '"individual","broker_introduced","institution"')
    assert table.find("dmn:input[@label='total_assets']/dmn:inputValues", NS) is None
    output = table.find("dmn:output", NS)
    assert (output.get("name"), output.get("typeRef")) == ("tier", "string")
    assert output.findtext("dmn:outputValues/dmn:text", namespaces=NS) == '"premier","large","medium","small"'
    # An integer term is a FEEL number.
    offers = decision(parse_dmn(bundled()), "product_offers")
    level = offers.find("dmn:decisionTable/dmn:input[@label='stated_risk_level']/dmn:inputExpression", NS)
    assert level.get("typeRef") == "number"


def test_dmn_chains_tables_through_required_decisions() -> None:
    root = parse_dmn(bundled())

    def required(table_id: str, kind: str) -> list[str]:
        return [e.get("href") for e in decision(root, table_id).findall(f"dmn:informationRequirement/dmn:{kind}", NS)]

    assert required("service_tier", "requiredDecision") == []
    assert required("service_package", "requiredDecision") == ["#service_tier"]
    assert required("product_offers", "requiredDecision") == ["#service_tier"]
    assert required("marketing", "requiredDecision") == []
    # Vocabulary inputs are input data, each read through a requiredInput.
    inputs = {e.get("id"): e.get("name") for e in root.findall("dmn:inputData", NS)}
    assert [inputs[h.lstrip("#")] for h in required("service_package", "requiredInput")] == ["churn_band"]
    assert [inputs[h.lstrip("#")] for h in required("service_tier", "requiredInput")] == [
        "total_assets", "value_percentile", "client_type"]
    assert "tier" not in inputs.values()


def test_dmn_default_output_entry() -> None:
    spec = edited(lambda d: table_doc(d, "service_package").update(default={"package": "self_service"}))
    output = decision(parse_dmn(spec), "service_package").find("dmn:decisionTable/dmn:output", NS)
    assert output.findtext("dmn:defaultOutputEntry/dmn:text", namespaces=NS) == '"self_service"'
    plain = decision(parse_dmn(bundled()), "service_package").find("dmn:decisionTable/dmn:output", NS)
    assert plain.find("dmn:defaultOutputEntry", NS) is None


def test_dmn_escapes_and_keeps_chinese() -> None:
    spec = edited(lambda d: rule_doc(d, "service_tier", "TIER-SMALL").update(description="<小客户> & \"quoted\""))
    root = parse_dmn(spec)
    rule = decision(root, "service_tier").find("dmn:decisionTable/dmn:rule[@id='TIER-SMALL']", NS)
    assert rule.findtext("dmn:description", namespaces=NS) == "<小客户> & \"quoted\""


def test_write_rendering_writes_both_files(tmp_path: Path) -> None:
    spec = bundled()
    html_path, dmn_path = write_rendering(spec, tmp_path / "out" / "nested")
    assert html_path == tmp_path / "out" / "nested" / f"ruleset-{spec.version[:12]}.html"
    assert dmn_path == tmp_path / "out" / "nested" / f"ruleset-{spec.version[:12]}.dmn"
    assert "特级客户" in html_path.read_text(encoding="utf-8")
    assert ET.parse(dmn_path).getroot().get("name") == spec.name
