"""Read OpenSCAP results: an ARF file (`oscap xccdf eval --results-arf`) and a SCAP source datastream.

An ARF file carries the TestResult *and* the datastream it was evaluated against, so titles, fix scripts and the
content version come from the very content that judged the host, not from a copy on the control host.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lxml import etree

from installer.core.errors import ComplianceError

XCCDF = "http://checklists.nist.gov/xccdf/1.2"
NS = {"x": XCCDF}
RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"
PROFILE_PREFIX = "xccdf_org.ssgproject.content_profile_"

# XCCDF 1.2 results, in the order the report lists them. "notselected" rules were not part of the profile.
RESULTS = ("pass", "fail", "error", "unknown", "notapplicable", "notchecked", "informational", "fixed")
SEVERITIES = ("high", "medium", "low", "unknown", "info")
# Fix systems, most readable first: the shell script is what an operator would type.
_FIX_SYSTEMS = ("urn:xccdf:fix:script:sh", "urn:xccdf:fix:script:ansible")


def short_rule_id(rule_id: str) -> str:
    return rule_id.removeprefix(RULE_PREFIX)


def full_rule_id(rule: str) -> str:
    """Accept 'sudo_add_umask' or the full XCCDF id; K3s check ids (k3s_…) pass through unchanged."""
    if rule.startswith("xccdf_") or rule.startswith("k3s_"):
        return rule
    return RULE_PREFIX + rule


def severity_rank(severity: str) -> int:
    """high=3, medium=2, low=1, anything else 0."""
    return {"high": 3, "medium": 2, "low": 1}.get(severity, 0)


@dataclass
class RuleResult:
    id: str
    result: str
    severity: str
    title: str
    fix: str = ""
    fix_system: str = ""
    description: str = ""

    @property
    def short_id(self) -> str:
        return short_rule_id(self.id)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ArfReport:
    path: Path
    target: str
    benchmark_id: str
    content_version: str
    profile_id: str
    profile_title: str
    start_time: str
    end_time: str
    score: float | None
    rules: list[RuleResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(r.result for r in self.rules)
        return {k: c.get(k, 0) for k in RESULTS} | {k: v for k, v in c.items() if k not in RESULTS}

    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if r.result in ("fail", "error")]


def _parse(path: Path) -> etree._ElementTree:
    if not path.is_file():
        raise ComplianceError(f"{path}: results file not found")
    try:
        # huge_tree: datastreams carry long OVAL text nodes; no network, no entity expansion.
        parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
        return etree.parse(str(path), parser)
    except etree.XMLSyntaxError as e:
        raise ComplianceError(f"{path}: not well-formed XML: {e}") from None


def _text(el) -> str:
    if el is None:
        return ""
    return " ".join("".join(el.itertext()).split())


def _fix_text(fix, values: dict[str, str]) -> str:
    """A fix's text with each <sub idref=VAR/> replaced by the value the profile set (or ${VAR})."""
    parts = [fix.text or ""]
    for child in fix:
        if isinstance(child.tag, str) and etree.QName(child).localname == "sub":
            idref = child.get("idref", "")
            parts.append(values.get(idref, "${" + idref.removeprefix("xccdf_org.ssgproject.content_value_") + "}"))
        elif isinstance(child.tag, str):
            parts.append("".join(child.itertext()))
        parts.append(child.tail or "")
    return re.sub(r"\n{3,}", "\n\n", "".join(parts)).strip()


def _rule_index(benchmark, values: dict[str, str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for rule in benchmark.iterfind(".//x:Rule", NS):
        fixes = {f.get("system"): f for f in rule.iterfind("x:fix", NS)}
        fix, system = "", ""
        for s in _FIX_SYSTEMS:
            if s in fixes:
                fix, system = _fix_text(fixes[s], values), s
                break
        out[rule.get("id")] = {
            "title": _text(rule.find("x:title", NS)),
            "severity": rule.get("severity", "unknown"),
            "fix": fix,
            "fix_system": system,
            "description": _text(rule.find("x:description", NS)),
        }
    return out


def parse_arf(path: str | Path) -> ArfReport:
    """Per-rule results of the (single) XCCDF TestResult in an ARF file, with titles and fixes from its content."""
    path = Path(path)
    tree = _parse(path)
    test_results = tree.findall(".//x:TestResult", NS)
    if len(test_results) != 1:
        raise ComplianceError(
            f"{path}: expected one XCCDF TestResult, found {len(test_results)} (is this an ARF file from `oscap xccdf eval --results-arf`?)"
        )
    tr = test_results[0]
    benchmarks = tree.findall(".//x:Benchmark", NS)
    bench_ref = tr.find("x:benchmark", NS)
    bench_id = bench_ref.get("id", "") if bench_ref is not None else ""
    benchmark = next((b for b in benchmarks if b.get("id") == bench_id), benchmarks[0] if benchmarks else None)
    if benchmark is None:
        raise ComplianceError(f"{path}: no XCCDF Benchmark inside the ARF (results were written without the content)")

    values = {sv.get("idref"): (sv.text or "") for sv in tr.iterfind("x:set-value", NS)}
    rules = _rule_index(benchmark, values)
    profile_el = tr.find("x:profile", NS)
    profile_id = profile_el.get("idref", "") if profile_el is not None else ""
    profile_title = ""
    for p in benchmark.iterfind("x:Profile", NS):
        if p.get("id") == profile_id:
            profile_title = _text(p.find("x:title", NS))
    version_el = benchmark.find("x:version", NS)
    score_el = tr.find("x:score", NS)

    results: list[RuleResult] = []
    for rr in tr.iterfind("x:rule-result", NS):
        result = (rr.findtext("x:result", default="", namespaces=NS) or "").strip()
        if result == "notselected":
            continue
        rid = rr.get("idref", "")
        meta = rules.get(rid, {})
        results.append(
            RuleResult(
                id=rid,
                result=result,
                severity=rr.get("severity") or meta.get("severity", "unknown"),
                title=meta.get("title", rid),
                fix=meta.get("fix", ""),
                fix_system=meta.get("fix_system", ""),
                description=meta.get("description", ""),
            )
        )
    return ArfReport(
        path=path,
        target=tr.findtext("x:target", default="", namespaces=NS),
        benchmark_id=benchmark.get("id", ""),
        content_version=(version_el.text or "").strip() if version_el is not None else "",
        profile_id=profile_id,
        profile_title=profile_title,
        start_time=tr.get("start-time", ""),
        end_time=tr.get("end-time", ""),
        score=float(score_el.text) if score_el is not None and score_el.text else None,
        rules=results,
    )


@dataclass
class DatastreamInfo:
    path: Path
    benchmark_id: str
    content_version: str
    profiles: dict[str, str]  # id -> title


def datastream_info(path: str | Path) -> DatastreamInfo:
    """Benchmark id, content version and profiles of a SCAP source datastream (streamed: DS files are 10+ MB)."""
    path = Path(path)
    if not path.is_file():
        raise ComplianceError(f"{path}: SCAP datastream not found")
    bench_id, version, profiles = "", "", {}
    try:
        for _, el in etree.iterparse(
            str(path),
            events=("end",),
            tag=(f"{{{XCCDF}}}Profile", f"{{{XCCDF}}}version", f"{{{XCCDF}}}Benchmark", f"{{{XCCDF}}}Rule", f"{{{XCCDF}}}Group"),
            huge_tree=True,
            resolve_entities=False,
            no_network=True,
        ):
            name = etree.QName(el).localname
            parent = el.getparent()
            if name == "Profile":
                profiles[el.get("id")] = _text(el.find("x:title", NS))
            elif name == "version" and parent is not None and etree.QName(parent).localname == "Benchmark" and not version:
                version = (el.text or "").strip()
            elif name == "Benchmark" and not bench_id:
                bench_id = el.get("id", "")
            if name in ("Rule", "Group"):
                el.clear(keep_tail=True)
    except etree.XMLSyntaxError as e:
        raise ComplianceError(f"{path}: not well-formed XML: {e}") from None
    if not bench_id:
        raise ComplianceError(f"{path}: no XCCDF Benchmark: not a SCAP source datastream")
    return DatastreamInfo(path, bench_id, version, profiles)
