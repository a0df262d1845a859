"""A small Harbor API v2.0 client over httpx: JSON in and out, one-line errors, secrets never in messages."""
from __future__ import annotations

import os
import ssl
from typing import Any

import httpx

from installer.core.errors import MedaiError


class HarborError(MedaiError):
    """Harbor refused or could not be reached; the message names the method, path and status."""


API_PREFIX = "/api/v2.0"


class HarborClient:
    """``HarborClient(url, username, password, ca_file=...)``; ``transport`` lets tests record requests."""

    def __init__(self, url: str, username: str, password: str, *, ca_file: str | os.PathLike | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = 30.0):
        if not url.startswith("https://") and transport is None:
            raise HarborError(f"{url}: Harbor's URL must be https:// (TLS from the site CA)")
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX, auth=(username, password), timeout=timeout, transport=transport,
            verify=ssl.create_default_context(cafile=str(ca_file)) if ca_file else True, headers={"Accept": "application/json"},
        )

    def __enter__(self) -> HarborClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                ok: tuple[int, ...] = (200, 201), by_name: bool = False) -> httpx.Response:
        """``by_name``: the ``{project_name_or_id}`` in ``path`` is a name even when it looks like a number."""
        headers = {"X-Is-Resource-Name": "true"} if by_name else None
        try:
            r = self._http.request(method, path, params=params, json=json, headers=headers)
        except httpx.HTTPError as e:
            raise HarborError(f"{method} {self.url}{API_PREFIX}{path}: {type(e).__name__}: {e}") from None
        if r.status_code not in ok:
            raise HarborError(f"{method} {API_PREFIX}{path}: HTTP {r.status_code}: {_error_text(r)}")
        return r

    def get(self, path: str, params: dict | None = None, ok: tuple[int, ...] = (200,), by_name: bool = False) -> httpx.Response:
        return self.request("GET", path, params=params, ok=ok, by_name=by_name)

    def post(self, path: str, body: Any, ok: tuple[int, ...] = (201,)) -> httpx.Response:
        return self.request("POST", path, json=body, ok=ok)

    def put(self, path: str, body: Any, ok: tuple[int, ...] = (200,), by_name: bool = False) -> httpx.Response:
        return self.request("PUT", path, json=body, ok=ok, by_name=by_name)

    def patch(self, path: str, body: Any, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        return self.request("PATCH", path, json=body, ok=ok)


def _error_text(r: httpx.Response) -> str:
    """Harbor's ``{"errors": [{"code", "message"}]}``, else the first line of the body (never the request)."""
    try:
        errs = r.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs) or r.text[:200]
    except (ValueError, AttributeError):
        return r.text.splitlines()[0][:200] if r.text else "(empty body)"
