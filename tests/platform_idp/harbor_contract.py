"""Harbor 2.13's published swagger as a test oracle, and a recording transport that answers like Harbor.

``SwaggerContract.check(request)`` fails when the path+method is not in the spec, a query or header
parameter is not declared for it, or the JSON body does not validate against the declared schema — strictly:
where the spec lists properties, any other property is an error (so a misspelt field fails).
``FakeHarbor`` is an httpx.MockTransport handler holding projects/robots/configurations in memory and answering
with bodies shaped like Harbor's (and checked against the spec's response schemas too).
"""
from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "harbor" / "swagger-v2.13.0.yaml"
_STANDARD_HEADERS = {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length",
                     "content-type", "authorization"}


def _strict(node):
    """Swagger 2 -> JSON Schema as Harbor means it: x-nullable allows null; listed properties are the only ones."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if (out.get("x-nullable") or out.get("x-isnullable")) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


class ContractError(AssertionError):
    pass


@dataclass
class SwaggerContract:
    spec: dict = field(default_factory=lambda: yaml.safe_load(SPEC_PATH.read_text()))

    def __post_init__(self):
        self.base = self.spec["basePath"]
        self.defs = _strict(self.spec["definitions"])
        self._routes = []
        for template, ops in self.spec["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template.rstrip("/"))) + "/?$"
            self._routes.append((re.compile(rx), template, ops))

    def _param(self, p: dict) -> dict:
        if "$ref" in p:
            return self.spec["parameters"][p["$ref"].rsplit("/", 1)[-1]]
        return p

    def operation(self, method: str, path: str) -> tuple[str, dict]:
        if not path.startswith(self.base):
            raise ContractError(f"{method} {path}: not under {self.base}")
        rel = path[len(self.base):]
        # A literal path (/projects/{x}/_deletable) wins over a parameter; try templates with fewer params first.
        for rx, template, ops in sorted(self._routes, key=lambda t: t[1].count("{")):
            if rx.match(rel):
                if method.lower() not in ops:
                    continue
                return template, ops[method.lower()]
        raise ContractError(f"{method} {rel}: no such path+method in Harbor's swagger")

    def schema(self, s: dict) -> dict:
        return {**_strict(s), "definitions": self.defs}

    def check(self, request: httpx.Request) -> str:
        template, op = self.operation(request.method, request.url.path)
        params = [self._param(p) for p in op.get("parameters", [])]
        where = f"{request.method} {template}"
        declared_q = {p["name"] for p in params if p["in"] == "query"}
        for q in request.url.params.keys():
            if q not in declared_q:
                raise ContractError(f"{where}: query parameter {q!r} is not declared (has {sorted(declared_q)})")
        for p in params:
            if p["in"] == "query" and p.get("required") and p["name"] not in request.url.params:
                raise ContractError(f"{where}: required query parameter {p['name']!r} missing")
        declared_h = {p["name"].lower() for p in params if p["in"] == "header"}
        for h in request.headers.keys():
            if h.lower() not in _STANDARD_HEADERS and h.lower() not in declared_h:
                raise ContractError(f"{where}: header {h!r} is not declared")
        body = [p for p in params if p["in"] == "body"]
        if request.content:
            if not body:
                raise ContractError(f"{where}: sends a body, the spec takes none")
            doc = json.loads(request.content)
            try:
                jsonschema.Draft4Validator(self.schema(body[0]["schema"])).validate(doc)
            except jsonschema.ValidationError as e:
                raise ContractError(f"{where}: body {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}") from None
        elif body and body[0].get("required"):
            raise ContractError(f"{where}: the spec requires a body")
        return template

    def check_response(self, method: str, template: str, status: int, doc) -> None:
        op = self.spec["paths"][template][method.lower()]
        resp = op["responses"].get(str(status))
        if resp is None:
            raise ContractError(f"{method} {template}: status {status} is not a documented response")
        if "$ref" in resp:
            resp = self.spec["responses"][resp["$ref"].rsplit("/", 1)[-1]]
        if "schema" in resp and doc is not None:
            jsonschema.Draft4Validator(self.schema(resp["schema"])).validate(doc)


@dataclass
class FakeHarbor:
    """Answers Harbor's project/robot/configuration endpoints from memory; records every request."""

    contract: SwaggerContract
    projects: dict[str, dict] = field(default_factory=dict)
    robots: dict[int, dict] = field(default_factory=dict)
    config: dict[str, dict] = field(default_factory=lambda: {"auth_mode": {"value": "db_auth", "editable": True}})
    requests: list[httpx.Request] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def writes(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests if r.method not in ("GET", "HEAD")]

    def _answer(self, method, template, status, doc=None) -> httpx.Response:
        self.contract.check_response(method, template, status, doc)
        return httpx.Response(status, json=doc) if doc is not None else httpx.Response(status)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        template = self.contract.check(request)
        m = request.method
        body = json.loads(request.content) if request.content else None
        parts = request.url.path.split("/")
        if template == "/projects" and m == "HEAD":
            return self._answer(m, template, 200 if request.url.params["project_name"] in self.projects else 404)
        if template == "/projects" and m == "POST":
            name = body["project_name"]
            if name in self.projects:
                return self._answer(m, template, 409, None)
            pid = next(self._ids)
            meta = {"public": "false", **(body.get("metadata") or {})}
            self.projects[name] = {"project_id": pid, "name": name, "metadata": meta, "repo_count": 0}
            return self._answer(m, template, 201)
        if template == "/projects/{project_name_or_id}":
            p = self.projects.get(parts[-1])
            if p is None:
                return httpx.Response(404, json={"errors": [{"code": "NOT_FOUND", "message": "project not found"}]})
            if m == "GET":
                return self._answer(m, template, 200, copy.deepcopy(p))
            if m == "PUT":
                p["metadata"].update(body.get("metadata") or {})
                return self._answer(m, template, 200)
        if template == "/robots" and m == "GET":
            q = request.url.params.get("q", "")
            name = q.removeprefix("name=")
            found = [self._public(r) for r in self.robots.values() if r["name"] == "robot$" + name]
            return self._answer(m, template, 200, found)
        if template == "/robots" and m == "POST":
            rid = next(self._ids)
            robot = {**body, "id": rid, "name": "robot$" + body["name"], "secret": "S3cretFromHarbor" + str(rid),
                     "editable": True, "creation_time": "2026-12-01T00:00:00.000Z"}
            self.robots[rid] = robot
            return self._answer(m, template, 201, {"id": rid, "name": robot["name"], "secret": robot["secret"],
                                                   "creation_time": robot["creation_time"], "expires_at": -1})
        if template == "/robots/{robot_id}":
            r = self.robots[int(parts[-1])]
            if m == "PUT":
                r.update({k: v for k, v in body.items() if k in ("permissions", "description", "disable", "duration")})
                return self._answer(m, template, 200)
            if m == "PATCH":
                r["secret"] = body["secret"]
                return self._answer(m, template, 200, {"secret": body["secret"]})
        if template == "/configurations":
            if m == "GET":
                return self._answer(m, template, 200, copy.deepcopy(self.config))
            if m == "PUT":
                for k, v in body.items():
                    if k != "oidc_client_secret":
                        self.config[k] = {"value": v, "editable": True}
                self.last_oidc_secret = body.get("oidc_client_secret")
                return self._answer(m, template, 200)
        raise ContractError(f"FakeHarbor does not answer {m} {template}")

    @staticmethod
    def _public(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "secret"}


class DictSink:
    """A SecretSink over a dict, for tests (the production sink is Vault KV)."""

    def __init__(self):
        self.data: dict[str, dict] = {}

    def put_secret(self, path, data):
        self.data[path] = dict(data)

    def has_secret(self, path):
        return path in self.data
