"""A streaming client for the OCI distribution API (what docker, podman and skopeo speak to registries).

What it handles, because real registries need it:
- auth: anonymous or credentialed bearer tokens (``WWW-Authenticate: Bearer realm=…,service=…,scope=…``, as Docker
  Hub, ghcr.io and quay.io answer) and HTTP basic auth; credentials come from the docker/podman auth files;
- transport: plain HTTP for loopback registries and for hosts the caller marks insecure, otherwise HTTPS with the
  system CAs or a given CA file; proxies from the environment (except for loopback);
- retries with exponential backoff on connection errors, 5xx and 429; an interrupted blob download resumes with
  a Range request;
- every manifest and every blob is checked against its sha256 digest.

Blobs are never held in memory: ``fetch_blob`` streams chunks into a writer (see installer.oci.layout).
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from installer.core.errors import RegistryError
from installer.oci.media_types import ACCEPT, INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST
from installer.oci.refs import DIGEST, DOCKER_HUB, DOCKER_HUB_API, ImageRef

CHUNK = 1024 * 1024
MAX_MANIFEST = 4 * 1024 * 1024
MAX_TOKEN_RESPONSE = 64 * 1024  # a bearer token answer: a JSON object with a token of a few KiB
MAX_ERROR_BODY = 16 * 1024      # only the first bytes of an error body are ever shown
MAX_PLAIN_RESPONSE = 1024 * 1024  # any non-streamed answer (upload sessions, HEADs, catalog, errors)



def read_bounded(r: httpx.Response, limit: int, what: str, truncate: bool = False) -> bytes:
    """A streamed response body, at most `limit` bytes: RegistryError past it (or the first `limit` bytes when
    `truncate`, for bodies only shown in a message)."""
    buf = bytearray()
    for chunk in r.iter_bytes():
        buf += chunk
        if len(buf) > limit:
            if truncate:
                r._content = bytes(buf[:limit])  # what _error_text reads
                return r._content
            raise RegistryError(f"{what}: response larger than {limit} bytes: refused")
    if truncate:
        r._content = bytes(buf)
    return bytes(buf)


def credentials_may_go_to(url: str, registry_host: str) -> bool:
    """Basic-auth credentials go to a token service only on the registry's own host, over HTTPS (plain HTTP
    only on loopback). A registry naming another realm gets an anonymous token request."""
    u = httpx.URL(url)
    host = u.host + (f":{u.port}" if u.port else "")
    same = host == registry_host or u.host == registry_host.rsplit(":", 1)[0] and not u.port and ":" not in registry_host
    if not same:
        return False
    return u.scheme == "https" or (u.scheme == "http" and is_loopback(u.host))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost, with or without a port."""
    h = host
    if h.startswith("["):
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------- credentials


def auth_file_candidates() -> list[Path]:
    """The auth files podman, skopeo and docker read, in the order they are consulted."""
    out: list[Path] = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        out.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        out.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    home = Path(os.path.expanduser("~"))
    out.append(Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "containers" / "auth.json")
    out.append(Path(os.environ.get("DOCKER_CONFIG") or home / ".docker") / "config.json")
    return out


def _auth_key(key: str) -> str:
    k = re.sub(r"^https?://", "", key).rstrip("/")
    if k in ("index.docker.io/v1", "index.docker.io", DOCKER_HUB_API):
        return DOCKER_HUB
    return k


def find_credentials(ref: ImageRef, files: Iterable[Path] | None = None) -> tuple[str, str] | None:
    """(username, password) for a registry from the first auth file that has an entry for it.

    Entries may be keyed by host or by host/namespace (podman); the longest matching key wins. Credential
    helpers (``credsStore``/``credHelpers``) are not run.
    """
    for path in files if files is not None else auth_file_candidates():
        try:
            doc = json.loads(Path(path).read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            raise RegistryError(f"{path}: cannot read registry auth file: {e}") from None
        auths = doc.get("auths") if isinstance(doc, dict) else None
        if not isinstance(auths, dict):
            continue
        best: tuple[int, tuple[str, str]] | None = None
        target = ref.repo_name
        for key, entry in auths.items():
            k = _auth_key(key)
            if not (target == k or target.startswith(k + "/")) or not isinstance(entry, dict):
                continue
            creds = None
            if entry.get("auth"):
                try:
                    user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise RegistryError(f"{path}: auths.{key}.auth is not base64 of user:password") from None
                creds = (user, pw)
            elif entry.get("username") and entry.get("password"):
                creds = (entry["username"], entry["password"])
            if creds and (best is None or len(k) > best[0]):
                best = (len(k), creds)
        if best:
            return best[1]
    return None


# ---------------------------------------------------------------------------------------------------- the client


@dataclass
class Manifest:
    """A manifest or index exactly as the registry served it; ``digest`` is the sha256 of ``data``."""

    data: bytes
    media_type: str
    digest: str

    @property
    def size(self) -> int:
        return len(self.data)

    def json(self) -> dict:
        return json.loads(self.data)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


@dataclass
class Stats:
    blob_bytes: int = 0
    manifest_bytes: int = 0
    blobs_fetched: int = 0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


class Cancelled(Exception):
    """Raised inside a blob stream when the collection was cancelled (another blob failed)."""


def _larger_socket_reads(size: int = 1024 * 1024) -> None:
    """httpcore reads HTTP/1.1 bodies 64 KiB per recv(); with 1 MiB reads a blob streams about twice as fast
    here (measured on loopback: ~curl's speed instead of half of it). The attribute is httpcore's own class
    constant; we only ever raise it, and leave it alone if a future httpcore drops it."""
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:
        return
    if isinstance(getattr(HTTP11Connection, "READ_NUM_BYTES", None), int) and HTTP11Connection.READ_NUM_BYTES < size:
        HTTP11Connection.READ_NUM_BYTES = size


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class RegistryClient:
    """Talks to OCI registries. Thread-safe: collect_images fetches ``workers`` blobs at once through one client.

    Args:
        insecure: registries (``host[:port]``) to reach over plain HTTP; loopback hosts are, unless listed in
            ``https``.
        https: loopback registries to reach over HTTPS all the same (a local TLS registry).
        ca_file: PEM bundle of CAs to trust for HTTPS (a private registry such as Harbor).
        credentials: ``{registry: (user, password)}``; overrides the auth files.
        auth_files: auth files to read instead of the usual ones (REGISTRY_AUTH_FILE, containers/auth.json,
            ~/.docker/config.json).
        retries: attempts per request on connection errors, 5xx and 429; backoff doubles from ``backoff`` s.
        workers: blobs fetched at once by collect_images / push_image.
    """

    def __init__(
        self,
        *,
        insecure: Iterable[str] = (),
        https: Iterable[str] = (),
        ca_file: str | os.PathLike | None = None,
        credentials: dict[str, tuple[str, str]] | None = None,
        auth_files: Iterable[str | os.PathLike] | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 60.0,
        workers: int = 4,
        user_agent: str = "medai",
    ) -> None:
        self.insecure = set(insecure)
        self.https = set(https)
        self.credentials = dict(credentials or {})
        self.auth_files = [Path(p) for p in auth_files] if auth_files is not None else None
        self.retries = max(1, retries)
        self.backoff = backoff
        self.workers = max(1, workers)
        self.stats = Stats()
        self._tokens: dict[tuple[str, str], str] = {}
        self._basic: dict[str, bool] = {}
        self._cred_cache: dict[str, tuple[str, str] | None] = {}
        self._lock = threading.Lock()
        # One SSL context for every transport: loading a CA bundle costs ~60 ms each time.
        if ca_file:
            try:
                verify = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as e:
                raise RegistryError(f"{ca_file}: cannot load CA file: {e}") from None
        else:
            verify = httpx.create_ssl_context()
        _larger_socket_reads()
        # Loopback never goes through an environment proxy.
        direct = httpx.HTTPTransport(verify=verify, retries=0)
        mounts = {f"all://{h}": direct for h in ("127.0.0.1", "localhost", "[::1]")}
        self._http = httpx.Client(
            verify=verify,
            trust_env=True,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            follow_redirects=True,
            headers={"User-Agent": user_agent},
            limits=httpx.Limits(max_connections=max(10, self.workers * 2), max_keepalive_connections=max(10, self.workers * 2)),
            mounts=mounts,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def base_url(self, ref: ImageRef) -> str:
        host = ref.api_host
        if host in self.https or ref.registry in self.https:
            return f"https://{host}"
        scheme = "http" if is_loopback(host) or host in self.insecure or ref.registry in self.insecure else "https"
        return f"{scheme}://{host}"

    def _same_origin(self, url: str, ref: ImageRef) -> bool:
        """Credentials go only to the registry's own scheme, host and port: a Location (an upload URL, a blob
        redirect) naming another host, or plain HTTP where the registry speaks HTTPS, gets none. httpx itself
        drops Authorization on a redirect to another origin."""
        a, b = httpx.URL(url), httpx.URL(self.base_url(ref))
        return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)

    def _creds(self, ref: ImageRef) -> tuple[str, str] | None:
        if ref.registry in self.credentials:
            return self.credentials[ref.registry]
        key = ref.repo_name  # auth files may hold per-namespace entries
        with self._lock:
            if key in self._cred_cache:
                return self._cred_cache[key]
        creds = find_credentials(ref, self.auth_files)
        with self._lock:
            self._cred_cache[key] = creds
        return creds

    def _scope(self, ref: ImageRef, push: bool) -> str:
        return f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"

    def _auth_header(self, ref: ImageRef, push: bool) -> dict[str, str]:
        with self._lock:
            tok = self._tokens.get((ref.api_host, self._scope(ref, push)))
            basic = self._basic.get(ref.api_host)
        if tok:
            return {"Authorization": f"Bearer {tok}"}
        if basic:
            creds = self._creds(ref)
            if creds:
                return {"Authorization": "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()}
        return {}

    def _authenticate(self, ref: ImageRef, push: bool, challenge: str, sent: str = "") -> None:
        """Answer a 401 challenge: fetch a bearer token from the realm, or switch this host to basic auth."""
        scheme, params = _parse_challenge(challenge)
        creds = self._creds(ref)
        if scheme == "basic":
            if not creds:
                raise RegistryError(
                    f"{ref}: registry {ref.registry} requires credentials and none were found "
                    f"(REGISTRY_AUTH_FILE, containers/auth.json or ~/.docker/config.json)"
                )
            if sent.startswith("Basic "):  # this very request carried them: they were refused
                raise RegistryError(f"{ref}: registry {ref.registry} refused the credentials for user {creds[0]!r}")
            if self.base_url(ref).startswith("http://") and not is_loopback(ref.api_host):
                raise RegistryError(f"{ref}: registry {ref.registry} asks for basic credentials over plain HTTP: "
                                    "refused (credentials travel only over TLS, or to loopback)")
            with self._lock:
                self._basic[ref.api_host] = True
            return
        if scheme != "bearer" or not params.get("realm"):
            raise RegistryError(f"{ref}: registry {ref.registry} asks for unsupported authentication {scheme!r}")
        query = {"scope": self._scope(ref, push)}
        if params.get("service"):
            query["service"] = params["service"]
        withheld = creds is not None and not credentials_may_go_to(params["realm"], ref.api_host)
        auth = httpx.BasicAuth(*creds) if creds and not withheld else None
        r = self._send("GET", params["realm"], ref, params=query, auth=auth, authenticate=False, stream=True)
        try:
            data = read_bounded(r, MAX_TOKEN_RESPONSE, f"{ref}: token service {params['realm']}")
        finally:
            r.close()
        if r.status_code in (401, 403):
            who = f"user {creds[0]!r}" if auth else "anonymous access"
            why = (f" (credentials for {ref.api_host} are never sent to another host or over plain HTTP)" if withheld else "")
            raise RegistryError(f"{ref}: token service {params['realm']} refused {who} (HTTP {r.status_code}){why}")
        if r.status_code != 200:
            raise RegistryError(f"{ref}: token service {params['realm']} answered HTTP {r.status_code}")
        try:
            body = json.loads(data)
            token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        except ValueError:
            token = None
        if token is not None and not isinstance(token, str):
            token = None
        if not token:
            raise RegistryError(f"{ref}: token service {params['realm']} returned no token")
        with self._lock:
            self._tokens[(ref.api_host, self._scope(ref, push))] = token

    def _send(
        self,
        method: str,
        url: str,
        ref: ImageRef,
        *,
        push: bool = False,
        stream: bool = False,
        authenticate: bool = True,
        headers: dict[str, str] | None = None,
        ok_statuses: tuple[int, ...] = (),
        **kw,
    ) -> httpx.Response:
        """One request with retries (connect errors, 5xx, 429) and at most two authentication rounds."""
        delay = self.backoff
        auth_rounds = 0
        attempt = 0
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            if authenticate and self._same_origin(url, ref):  # an upload Location elsewhere gets no credentials
                hdrs.update(self._auth_header(ref, push))
            req_kw = {k: v for k, v in kw.items() if k not in ("auth", "body_factory")}
            if kw.get("body_factory") is not None:  # a streamed upload body must be re-created for each attempt
                req_kw["content"] = kw["body_factory"]()
            try:
                req = self._http.build_request(method, url, headers=hdrs, **req_kw)
                self.stats.add(requests=1)
                r = self._http.send(req, stream=True, auth=kw.get("auth"))
                if not stream:  # every body is read bounded; a plain response keeps its (small) content
                    try:
                        r._content = read_bounded(r, MAX_PLAIN_RESPONSE, f"{ref}: {method} {url.split('?')[0]}")
                    finally:
                        r.close()
            except httpx.TransportError as e:
                if "CERTIFICATE_VERIFY_FAILED" in str(e):  # retrying cannot fix trust
                    raise RegistryError(
                        f"{ref}: TLS certificate of {ref.registry} not trusted ({e}); pass the registry's CA file"
                    ) from None
                if attempt >= self.retries:
                    raise RegistryError(f"{ref}: registry {ref.registry} unreachable ({type(e).__name__}: {e or 'no detail'})") from None
                time.sleep(delay)
                delay *= 2
                continue
            if r.status_code == 401 and authenticate and auth_rounds < 2 and "www-authenticate" in r.headers:
                r.close()
                auth_rounds += 1
                self._authenticate(ref, push, r.headers["www-authenticate"], hdrs.get("Authorization", ""))
                continue
            if (r.status_code >= 500 or r.status_code == 429) and r.status_code not in ok_statuses and attempt < self.retries:
                wait = delay
                if r.status_code == 429 and r.headers.get("retry-after", "").isdigit():
                    wait = min(float(r.headers["retry-after"]), 30.0)
                r.close()
                time.sleep(wait)
                delay *= 2
                continue
            return r

    @staticmethod
    def _error_text(r: httpx.Response) -> str:
        """The registry's own error codes, from at most MAX_ERROR_BODY bytes of the body, on one line."""
        try:
            data = r.content if r.is_stream_consumed else read_bounded(r, MAX_ERROR_BODY, "error body", truncate=True)
        except (httpx.HTTPError, httpx.StreamError):
            data = b""
        try:
            errs = json.loads(data).get("errors") or []
            if errs:
                text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs[:5])
                return "".join(c if c.isprintable() else " " for c in text)[:500]
        except (ValueError, AttributeError, TypeError):
            pass
        return f"HTTP {r.status_code}"

    # ------------------------------------------------------------------ manifests

    def get_manifest(self, ref: ImageRef, reference: str | None = None) -> Manifest:
        """GET a manifest or index by tag or digest; its bytes are checked against the digest asked for and the
        registry's Docker-Content-Digest. Raises RegistryError naming ``ref`` when missing or wrong."""
        reference = reference or ref.reference
        url = f"{self.base_url(ref)}/v2/{ref.repository}/manifests/{reference}"
        r = self._send("GET", url, ref, stream=True, headers={"Accept": ACCEPT})
        try:
            if r.status_code != 200:
                read_bounded(r, MAX_ERROR_BODY, "error body", truncate=True)
            if r.status_code == 404:
                what = "manifest" if reference.startswith("sha256:") else "tag"
                raise RegistryError(f"{ref}: {what} {reference} not found in {ref.repo_name}")
            if r.status_code in (401, 403):
                raise RegistryError(f"{ref}: access denied by {ref.registry} ({self._error_text(r)})")
            if r.status_code != 200:
                raise RegistryError(f"{ref}: registry {ref.registry} answered {self._error_text(r)} for manifest {reference}")
            buf = bytearray()
            for chunk in r.iter_raw():  # bounded: a manifest is small, a hostile one is not read whole
                buf += chunk
                if len(buf) > MAX_MANIFEST:
                    raise RegistryError(f"{ref}: manifest larger than {MAX_MANIFEST} bytes")
            data = bytes(buf)
        finally:
            r.close()
        self.stats.add(manifest_bytes=len(data))
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{ref}: manifest digest mismatch: asked for {reference}, registry served {digest}")
        served = r.headers.get("docker-content-digest")
        if served and served.startswith("sha256:") and served != digest:
            raise RegistryError(f"{ref}: manifest digest mismatch: registry says {served}, content is {digest}")
        media_type = r.headers.get("content-type", "").split(";")[0].strip()
        try:
            body = json.loads(data)
        except ValueError:
            raise RegistryError(f"{ref}: manifest {reference} is not JSON") from None
        if not isinstance(body, dict):
            raise RegistryError(f"{ref}: manifest {reference} is not a JSON object")
        media_type = body.get("mediaType") or media_type
        if media_type not in INDEX_TYPES + MANIFEST_TYPES and isinstance(body, dict):
            # OCI allows manifests without mediaType; some registries send a generic Content-Type
            if isinstance(body.get("manifests"), list):
                media_type = OCI_INDEX
            elif isinstance(body.get("layers"), list) and isinstance(body.get("config"), dict):
                media_type = OCI_MANIFEST
        if media_type not in INDEX_TYPES + MANIFEST_TYPES:
            raise RegistryError(f"{ref}: unsupported manifest media type {media_type!r} (need OCI or Docker v2 schema 2)")
        return Manifest(data, media_type, digest)

    def head_manifest(self, ref: ImageRef, reference: str | None = None) -> str | None:
        """The digest a tag resolves to (HEAD, Docker-Content-Digest), or None when the registry does not say."""
        reference = reference or ref.reference
        url = f"{self.base_url(ref)}/v2/{ref.repository}/manifests/{reference}"
        r = self._send("HEAD", url, ref, headers={"Accept": ACCEPT})
        if r.status_code == 404:
            return None
        d = r.headers.get("docker-content-digest")
        return d if r.status_code == 200 and d and DIGEST.match(d) else None

    def put_manifest(self, ref: ImageRef, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its digest; returns its digest."""
        url = f"{self.base_url(ref)}/v2/{ref.repository}/manifests/{reference}"
        r = self._send("PUT", url, ref, push=True, content=data, headers={"Content-Type": media_type})
        if r.status_code not in (200, 201):
            raise RegistryError(f"{ref}: registry {ref.registry} refused manifest {reference}: {self._error_text(r)}")
        return sha256_digest(data)

    # ------------------------------------------------------------------ blobs

    def fetch_blob(
        self,
        ref: ImageRef,
        digest: str,
        sink: Callable[[bytes], None],
        offset: int = 0,
        progress: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
        size: int | None = None,
    ) -> int:
        """Stream blob ``digest`` from byte ``offset`` into ``sink`` chunk by chunk; returns bytes received.

        ``size`` (the descriptor's): the stream stops there; a registry sending more is refused at that byte.

        Starts with ``Range: bytes=offset-`` when offset > 0; when the registry cannot resume there (it answers
        200 or 416) BlobRestart is raised and the caller starts over from 0. A broken stream is resumed with
        Range (up to ``retries`` times). Digest checking is the sink's job (it owns the hash).
        """
        url = f"{self.base_url(ref)}/v2/{ref.repository}/blobs/{digest}"
        received = 0
        delay = self.backoff
        failures = 0
        while True:
            pos = offset + received
            headers = {"Range": f"bytes={pos}-"} if pos else {}
            r = self._send("GET", url, ref, stream=True, headers=headers)
            try:
                if r.status_code == 404:
                    raise RegistryError(f"{ref}: blob {digest} not found in {ref.repo_name}")
                if r.status_code == 416 and pos:
                    raise BlobRestart()
                if r.status_code not in (200, 206):
                    read_bounded(r, MAX_ERROR_BODY, "error body", truncate=True)
                    raise RegistryError(f"{ref}: registry {ref.registry} answered {self._error_text(r)} for blob {digest}")
                if pos and r.status_code == 200:
                    raise BlobRestart()
                try:
                    for chunk in r.iter_raw():
                        if cancel is not None and cancel.is_set():
                            raise Cancelled()
                        if size is not None and offset + received + len(chunk) > size:
                            raise RegistryError(
                                f"{ref}: blob {digest}: registry {ref.registry} sent more than the descriptor's {size} bytes: refused"
                            )
                        sink(chunk)
                        received += len(chunk)
                        self.stats.add(blob_bytes=len(chunk))
                        if progress:
                            progress(len(chunk))
                    self.stats.add(blobs_fetched=1)
                    return received
                except httpx.TransportError as e:
                    failures += 1
                    if failures >= self.retries:
                        raise RegistryError(f"{ref}: download of blob {digest} kept failing ({type(e).__name__})") from None
                    time.sleep(delay)
                    delay *= 2
            finally:
                r.close()

    def blob_exists(self, ref: ImageRef, digest: str, push: bool = False) -> bool:
        r = self._send("HEAD", f"{self.base_url(ref)}/v2/{ref.repository}/blobs/{digest}", ref, push=push)
        return r.status_code == 200

    def push_blob(self, ref: ImageRef, digest: str, size: int, path: Path, mount_from: str | None = None) -> bool:
        """Upload a blob from a file (monolithic PUT, streamed from disk) unless the registry has it.

        Returns True when bytes were uploaded."""
        if self.blob_exists(ref, digest, push=True):
            return False
        base = self.base_url(ref)
        r = self._send("POST", f"{base}/v2/{ref.repository}/blobs/uploads/", ref, push=True)
        if r.status_code == 201:  # mounted or created (rare without mount)
            return False
        if r.status_code != 202 or "location" not in r.headers:
            raise RegistryError(f"{ref}: registry {ref.registry} refused a blob upload: {self._error_text(r)}")
        loc = r.headers["location"]
        if loc.startswith("/"):
            loc = base + loc
        sep = "&" if "?" in loc else "?"

        def body() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        r = self._send(
            "PUT",
            f"{loc}{sep}digest={digest}",
            ref,
            push=True,
            body_factory=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        if r.status_code not in (201, 204):
            raise RegistryError(f"{ref}: upload of blob {digest} refused: {self._error_text(r)}")
        return True


class BlobRestart(Exception):
    """The registry could not resume at the requested offset: the caller discards its partial file and restarts."""
