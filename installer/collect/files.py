"""Download pinned files (K3s binary, airgap tarballs, install script, SCAP content…) into files/<name>.

Bytes go to BUNDLE/.tmp/files/<name>.part, hashed while they stream. An interrupted download resumes with an
HTTP Range request from the partial; a file is renamed into files/ only after its sha256 matched the pin
(and, when the entry names one, its Sigstore bundle verified). A mismatch discards the partial.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from installer.bundle.manifest import File
from installer.core.errors import SourceError, TrustError
from installer.core.hashing import CHUNK, fsync_rename, sha256_file
from installer.core.progress import Progress
from installer.trust.sigstore import verify_artifact

RETRIES = 4


@dataclass
class FileResult:
    name: str
    path: Path
    sha256: str
    size: int
    fetched: bool


def _hash_existing(path: Path) -> hashlib._Hash:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h


def local_path(url: str, base: Path | None = None) -> Path | None:
    """The filesystem path of a file:// URL or a plain path; None for http(s)."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    if url.startswith(("http://", "https://")):
        return None
    p = Path(url)
    return p if p.is_absolute() or base is None else base / p


def http_download(url: str, part: Path, label: str, progress: Progress, headers: dict[str, str] | None = None,
                  client: httpx.Client | None = None) -> str:
    """Stream url into part (appending to what is already there) and return the sha256 of the whole file.

    Resumes with Range from the partial's size; a server that ignores Range (200) restarts from zero.
    Transport errors are retried with backoff, each retry resuming where the last one stopped.
    """
    own = client is None
    client = client or httpx.Client(follow_redirects=True, trust_env=True, timeout=httpx.Timeout(60, connect=15))
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in range(RETRIES + 1):
            have = part.stat().st_size if part.exists() else 0
            req_headers = dict(headers or {})
            if have:
                req_headers["Range"] = f"bytes={have}-"
            try:
                with client.stream("GET", url, headers=req_headers) as resp:
                    if resp.status_code == 416 and have:
                        part.unlink()  # the partial is as long as (or longer than) the file: start over
                        continue
                    if resp.status_code == 404:
                        raise SourceError(f"{label}: not found at {url} (HTTP 404)")
                    if resp.status_code >= 400:
                        if resp.status_code >= 500 and attempt < RETRIES:
                            time.sleep(min(0.5 * 2 ** attempt, 8))
                            continue
                        raise SourceError(f"{label}: {url} answered HTTP {resp.status_code}")
                    resumed = resp.status_code == 206 and have > 0
                    h = _hash_existing(part) if resumed else hashlib.sha256()
                    total = None
                    if resp.headers.get("content-length"):
                        total = int(resp.headers["content-length"]) + (have if resumed else 0)
                    with progress.task(label, total) as advance, open(part, "ab" if resumed else "wb") as out:
                        if resumed:
                            advance(have)
                        for chunk in resp.iter_bytes():  # as received: a kill loses at most one read
                            out.write(chunk)
                            h.update(chunk)
                            advance(len(chunk))
                            progress.counters.fetched(len(chunk))
                    return h.hexdigest()
            except httpx.TransportError as e:
                if attempt >= RETRIES:
                    raise SourceError(f"{label}: cannot download {url}: {e or type(e).__name__}") from None
                time.sleep(min(0.5 * 2 ** attempt, 8))
        raise SourceError(f"{label}: cannot download {url}: gave up after {RETRIES + 1} attempts")
    finally:
        if own:
            client.close()


def copy_local(src: Path, part: Path, label: str, progress: Progress) -> str:
    """Stream a local file into part, hashing as it goes."""
    if not src.is_file():
        raise SourceError(f"{label}: {src} not found")
    part.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with progress.task(label, src.stat().st_size) as advance, open(src, "rb") as f, open(part, "wb") as out:
        while chunk := f.read(CHUNK):
            out.write(chunk)
            h.update(chunk)
            advance(len(chunk))
            progress.counters.fetched(len(chunk))
    return h.hexdigest()


def _verify_sigstore(entry: File, artifact: Path, tmp_dir: Path, base: Path | None, progress: Progress) -> None:
    assert entry.sigstore is not None
    src = local_path(entry.sigstore.bundle, base)
    bundle_path = tmp_dir / f"{entry.name}.sigstore.json"
    if src is None:
        bundle_path.unlink(missing_ok=True)
        http_download(entry.sigstore.bundle, bundle_path, f"{entry.name} sigstore bundle", progress)
    else:
        if not src.is_file():
            raise SourceError(f"file {entry.name}: sigstore bundle {src} not found")
        shutil.copyfile(src, bundle_path)
    label = f"file {entry.name}: Sigstore verification for {entry.sigstore.identity} ({entry.sigstore.issuer}) failed"
    try:
        verify_artifact(artifact, bundle_path, entry.sigstore.identity, entry.sigstore.issuer)  # raises unless verified
    except Exception as e:  # TrustError from a failed check, or unreadable input
        detail = str(e).replace(f"{artifact}: ", "")
        raise TrustError(f"{label}: {detail}") from None
    finally:
        bundle_path.unlink(missing_ok=True)


def fetch_file(entry: File, files_dir: Path, tmp_dir: Path, progress: Progress | None = None,
               base: Path | None = None) -> FileResult:
    """Make files/<name> present with the pinned sha256; download only when it is missing or differs."""
    progress = progress or Progress()
    final = files_dir / entry.name
    label = f"file {entry.name}"
    if final.is_file():
        with progress.task(f"check {entry.name}", final.stat().st_size) as advance:
            sha = sha256_file(final, advance)
        if sha == entry.sha256:
            size = final.stat().st_size
            progress.counters.reused(size)
            return FileResult(entry.name, final, sha, size, fetched=False)
        final.unlink()  # altered or re-pinned: fetch again

    part = tmp_dir / "files" / f"{entry.name}.part"
    src = local_path(entry.url, base)
    if src is not None:
        sha = copy_local(src, part, label, progress)
    else:
        resuming = part.exists() and part.stat().st_size > 0
        sha = http_download(entry.url, part, label, progress)
        if sha != entry.sha256 and resuming:
            # the partial may have come from another upstream file: one clean retry before calling it a mismatch
            part.unlink()
            sha = http_download(entry.url, part, label, progress)
    if sha != entry.sha256:
        part.unlink(missing_ok=True)
        raise SourceError(f"file {entry.name}: sha256 mismatch for {entry.url}: expected {entry.sha256}, got {sha}")
    if entry.sigstore is not None:
        try:
            _verify_sigstore(entry, part, tmp_dir, base, progress)
        except Exception:
            part.unlink(missing_ok=True)
            raise
    size = part.stat().st_size
    fsync_rename(part, final)
    os.chmod(final, 0o644)
    return FileResult(entry.name, final, sha, size, fetched=True)
