"""Waivers: a signed-off decision that a failing rule is accepted on some hosts, until a date.

    waivers:
      - rule: sudoers_no_root_target          # short name or full XCCDF id; K3s checks by their k3s_… id
        scope: all                            # or {hosts: [srv1], groups: [servers]}
        justification: "Ops break-glass account; reviewed by ISO, ticket SEC-123"
        expires: 2027-03-31                   # the waiver holds through this day (UTC), not after
        approvedBy: "J. Doe (ISO)"            # optional

An expired waiver is not honoured: the rule counts as failed and the report says the waiver expired.

DEFAULT_WAIVERS is medai's own file (the rules that conflict with K3s or medai, each with its reason, listed in
docs/compliance.md): `medai verify` uses it when no --waivers file is given; a site's file replaces it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from installer.compliance.arf import full_rule_id
from installer.core.errors import ComplianceError
from installer.core.resources import package_file
from installer.core.yamldoc import field_path, read_yaml

DEFAULT_WAIVERS = package_file("compliance", "default-waivers.yml")


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hosts: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class Waiver(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    rule: str
    scope: Literal["all"] | Scope
    justification: str = Field(min_length=10)
    expires: dt.date
    approvedBy: str = ""

    @field_validator("rule")
    @classmethod
    def _rule(cls, v: str) -> str:
        v = v.strip()
        if not v or " " in v:
            raise ValueError(f"{v!r} is not a rule id")
        return full_rule_id(v)

    @field_validator("justification")
    @classmethod
    def _just(cls, v: str) -> str:
        return " ".join(v.split())

    def covers(self, host: str, groups: list[str]) -> bool:
        if self.scope == "all":
            return True
        return host in self.scope.hosts or any(g in self.scope.groups for g in groups)

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def scope_text(self) -> str:
        if self.scope == "all":
            return "all hosts"
        parts = []
        if self.scope.hosts:
            parts.append("hosts " + ", ".join(self.scope.hosts))
        if self.scope.groups:
            parts.append("groups " + ", ".join(self.scope.groups))
        return "; ".join(parts) or "nothing"


class WaiverFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    waivers: list[Waiver] = Field(default_factory=list)


@dataclass
class Decision:
    """What a waiver lookup found for one host and rule."""
    waiver: Waiver | None
    honoured: bool

    @property
    def note(self) -> str:
        if self.waiver is None:
            return ""
        if self.honoured:
            return f"waived until {self.waiver.expires}: {self.waiver.justification}"
        return f"waiver EXPIRED on {self.waiver.expires} and is not honoured: {self.waiver.justification}"


class Waivers:
    def __init__(self, waivers: list[Waiver], source: Path | None = None, today: dt.date | None = None):
        self.items = waivers
        self.source = source
        self.today = today or dt.datetime.now(dt.UTC).date()

    @classmethod
    def empty(cls) -> Waivers:
        return cls([])

    def lookup(self, rule_id: str, host: str, groups: list[str]) -> Decision:
        """A live waiver wins over an expired one for the same rule; with neither, no decision."""
        expired = None
        for w in self.items:
            if w.rule == rule_id and w.covers(host, groups):
                if not w.expired(self.today):
                    return Decision(w, True)
                expired = expired or w
        return Decision(expired, False) if expired else Decision(None, False)


# pydantic names the member of the scope union it tried; the user wrote no such field
_UNION_TAGS = ("Scope", "literal['all']")


def load_waivers(path: str | Path, today: dt.date | None = None) -> Waivers:
    path = Path(path)
    doc = read_yaml(path, ComplianceError, "waivers file")
    if doc is None:
        doc = {"waivers": []}
    if not isinstance(doc, dict):
        raise ComplianceError(f"{path}: expected a mapping with a 'waivers' list")
    try:
        wf = WaiverFile.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        raise ComplianceError(f"{path}: {field_path(err['loc'], skip=_UNION_TAGS)}: {err['msg']}") from None
    return Waivers(wf.waivers, path, today)
