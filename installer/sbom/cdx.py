"""CycloneDX 1.6 JSON from catalog results, reproducibly.

Byte-identical rebuilds: the serial number is a uuid5 of the input digest, the timestamp comes from the
image config's ``created`` (omitted when there is none), every bom-ref is derived from purls/digests,
and cyclonedx-python-lib sorts components, properties and dependencies.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from uuid import NAMESPACE_URL, uuid5

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion

from installer.core.errors import TrustError
from installer.sbom.package import Package

_licenses = LicenseFactory()


def serial(seed: str):
    return uuid5(NAMESPACE_URL, "urn:medai:sbom:" + seed)


def parse_created(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


def new_bom(seed: str, timestamp: datetime | None) -> Bom:
    bom = Bom(serial_number=serial(seed))
    bom.metadata.timestamp = timestamp  # type: ignore[assignment]  # None: omitted from the output
    bom.metadata.tools.components.add(Component(
        type=ComponentType.APPLICATION, name="medai", version=_medai_version(), bom_ref="tool:medai"))
    return bom


def _medai_version() -> str:
    try:
        return version("medai")
    except PackageNotFoundError:
        return "0"


def sha256_hash(hexdigest: str) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=hexdigest)


def props(pairs) -> list[Property]:
    return [Property(name=k, value=v) for k, v in pairs if v]


def licenses(values: tuple[str, ...]) -> list:
    made = [_licenses.make_from_string(v) for v in values]
    if len(made) > 1 and any(isinstance(m, LicenseExpression) for m in made):
        # CycloneDX allows either one expression or a list of licenses, never both
        made = [DisjunctiveLicense(name=v) for v in values]
    return made


def package_components(packages: tuple[Package, ...]) -> list[Component]:
    counts: dict[str, int] = {}
    for p in packages:
        counts[p.purl.to_string()] = counts.get(p.purl.to_string(), 0) + 1
    used: set[str] = set()
    out = []
    for p in packages:
        purl = p.purl.to_string()
        ref = purl if counts[purl] == 1 else f"{purl}#{p.location}"
        n = 1
        while ref in used:  # the same package listed twice in one database
            n += 1
            ref = f"{purl}#{p.location}#{n}"
        used.add(ref)
        out.append(Component(
            type=ComponentType(p.kind), name=p.name, version=p.version or None, purl=p.purl, bom_ref=ref,
            licenses=licenses(p.licenses),
            properties=props([("medai:cataloger", p.cataloger), ("medai:location", p.location), *p.properties]),
        ))
    return out


@lru_cache(maxsize=1)
def _validator():
    # Imported and compiled on first use: building the schema validator costs seconds, and most medai
    # commands never write an SBOM.
    _lean_iri_syntax()
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6)


def _lean_iri_syntax() -> None:
    """jsonschema checks the "iri"/"iri-reference" formats with ``rfc3987_syntax.is_valid_syntax`` only, but
    importing rfc3987_syntax builds 39 Earley parsers of its grammar (seconds: more than a whole SBOM build).
    Stand in a module with that one function over the one parser the package itself uses for it (same grammar
    file, same start symbols, same parser type), built on the first IRI checked: the same check, the same result."""
    import importlib.util
    import sys
    import types

    if "rfc3987_syntax" in sys.modules:
        return
    spec = importlib.util.find_spec("rfc3987_syntax")
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: jsonschema then skips those formats, as it would anyway
    grammar_file = Path(list(spec.submodule_search_locations)[0]) / "syntax_rfc3987.lark"
    if not grammar_file.is_file():
        return
    parser: list = []

    def is_valid_syntax(term: str, value: str) -> bool:
        from lark import Lark, exceptions

        if not parser:
            parser.append(Lark(grammar_file.read_text(encoding="utf-8"), start=["iri", "iri_reference", "absolute_iri"],
                               parser="earley"))
        try:
            parser[0].parse(value, start=term)
            return True
        except exceptions.LarkError:
            return False

    lean = types.ModuleType("rfc3987_syntax")
    lean.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    sys.modules["rfc3987_syntax"] = lean


def serialize(bom: Bom, what: str) -> bytes:
    if bom.metadata.component is not None:
        bom.register_dependency(bom.metadata.component, list(bom.components))
    text = JsonV1Dot6(bom).output_as_string(indent=1)
    # re-dump with sorted keys so the byte layout does not depend on the library's field order
    data = (json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    error = _validator().validate_str(data.decode())
    if error is not None:
        raise TrustError(f"{what}: generated SBOM fails CycloneDX 1.6 validation: {error}")
    return data
