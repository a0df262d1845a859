"""Images into the bundle's OCI layout, and back out into a registry.

collect_images: resolve every reference, then fetch every missing blob once (several at once, streamed,
resumable), then store manifests, then name the references in index.json — in that order, so a reference in
index.json always has all its content. Multi-arch indexes are kept byte for byte (their digest is what charts
and users pull by) while only the requested platforms' manifests and blobs are fetched.

push_image: the reverse, plus the image's cosign signature/attestation manifests (``sha256-<hex>.sig``).
"""
from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from installer.core.errors import BundleError, LockDriftError, MedaiError, RegistryError
from installer.oci.cosign_tags import is_signature_tag, signature_tag
from installer.oci.layout import DigestMismatch, OCILayout, RefEntry
from installer.oci.media_types import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, platform_matches, platform_string
from installer.oci.refs import ImageRef, parse_ref
from installer.oci.registry import BlobRestart, Cancelled, Manifest, RegistryClient, sha256_digest

# Configs of runnable images; any other config media type (or an artifactType) marks an OCI artifact such as
# Trivy's vulnerability databases (application/vnd.aquasec.trivy.config.v1+json): carried, signed and pushed
# like an image, but it has no platform and no file system to catalog.
IMAGE_CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")


def is_artifact(doc: dict) -> bool:
    """True for an OCI artifact manifest (not a container image), from its artifactType or config media type."""
    if "manifests" in doc:
        return False
    cfg = doc.get("config") or {}
    return bool(doc.get("artifactType")) or cfg.get("mediaType", IMAGE_CONFIG_TYPES[0]) not in IMAGE_CONFIG_TYPES
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")  # cosign's tag scheme: sha256-<hex>.sig / .att / .sbom


@dataclass
class CollectedImage:
    """One image as stored in the layout.

    ref: the full normalised reference, also its ``org.opencontainers.image.ref.name`` in oci/index.json.
    source: the reference as given to collect_images.
    digest, media_type, size: the top manifest (the original index for multi-arch images).
    blobs: every digest stored for this image (top manifest, platform manifests, configs, layers), sorted.
    platforms: the platforms present in the layout, e.g. ["linux/amd64"].
    fetched_bytes / reused_bytes: config+layer bytes downloaded in this run vs. already in the layout. Each
    distinct blob is counted once, for the first image that needs it, so the sums over all images are the run's
    totals.
    """

    ref: str
    digest: str
    media_type: str
    size: int
    blobs: list[str]
    platforms: list[str]
    source: str = ""
    fetched_bytes: int = 0
    reused_bytes: int = 0
    artifact: bool = False  # an OCI artifact (no platform, no SBOM), see is_artifact


@dataclass
class _Plan:
    given: str
    ref: ImageRef
    top: Manifest
    children: list[Manifest] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)  # config + layer digests -> size
    platforms: list[str] = field(default_factory=list)
    prefetched: dict[str, int] = field(default_factory=dict)  # bytes downloaded while resolving (configs)
    artifact: bool = False
    layers: set[str] = field(default_factory=set)  # layer digests of its runnable images (what SBOMs catalog)


def _media_type(doc: dict) -> str:
    if doc.get("mediaType"):
        return doc["mediaType"]
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def _manifest_blobs(ref: ImageRef, m: Manifest) -> dict[str, int]:
    doc = m.json()
    cfg = doc.get("config")
    if not cfg or not isinstance(doc.get("layers"), list):
        raise RegistryError(f"{ref}: manifest {m.digest} has no config or layers")
    out: dict[str, int] = {}
    for d in [cfg, *doc["layers"]]:
        digest = d.get("digest", "") if isinstance(d, dict) else ""
        if not _SHA256.match(digest):
            raise RegistryError(f"{ref}: manifest {m.digest} names blob {digest!r}: only sha256 digests are supported")
        out[digest] = int(d["size"])
    return out


PIPELINE_MIN = 16 * 1024 * 1024  # blobs at least this big are hashed+written on a second thread


class _PipelinedSink:
    """Hands chunks to a writer thread through a bounded queue: the HTTP parsing (holds the GIL) and the
    sha256 + file write (release it) then run on both cores. At most ``depth`` chunks wait in memory."""

    def __init__(self, write: Callable[[bytes], None], depth: int = 16):
        self._write = write
        self._q: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="medai-blob-writer", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (chunk := self._q.get()) is not None:
            if self._error is None:
                try:
                    self._write(chunk)
                except BaseException as e:  # surfaced to the producer on its next write / close
                    self._error = e

    def __call__(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(chunk)

    def close(self) -> None:
        """Wait until every queued chunk is written; re-raise a write error."""
        self._q.put(None)
        self._t.join()
        if self._error is not None:
            raise self._error


def _fetch(client: RegistryClient, ref: ImageRef, digest: str, w, size: int, progress, cancel) -> int:
    if size - w.offset < PIPELINE_MIN:
        return client.fetch_blob(ref, digest, w.write, w.offset, progress, cancel, size=size)
    sink = _PipelinedSink(w.write)
    try:
        n = client.fetch_blob(ref, digest, sink, w.offset, progress, cancel, size=size)
    finally:
        sink.close()
    return n


def fetch_blob_into(
    client: RegistryClient,
    layout: OCILayout,
    ref: ImageRef,
    digest: str,
    size: int,
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    facts=None,
) -> int:
    """Make sure blob ``digest`` is in the layout: resume a partial download, check the digest, rename.

    Returns the bytes downloaded now (0 when the blob was already there). A blob whose content does not match
    its digest raises RegistryError and leaves no file under the digest's name. With ``facts`` (a
    layer_facts.LayerFactsStore; for image layers) the SBOM facts are gathered from the same bytes as they are
    written, and kept under the digest once it matched: the layer is never read back just to be catalogued.
    """
    if layout.has_blob(digest, size):
        return 0
    fetched = 0
    for attempt in (0, 1):
        resumed = False
        tap = None
        try:
            with layout.blob_writer(digest, resume=attempt == 0) as w:
                resumed = w.offset > 0
                if facts is not None and w.offset == 0 and facts.get(digest) is None:
                    tap = w.tap = facts.tap()
                if w.offset == size:
                    continue_fetch = False  # the whole blob arrived before the last run was cut off
                elif w.offset > size:
                    w.restart()
                    resumed = False
                    continue_fetch = True
                else:
                    continue_fetch = True
                if continue_fetch:
                    try:
                        fetched += _fetch(client, ref, digest, w, size, progress, cancel)
                    except BlobRestart:
                        w.restart()
                        resumed = False
                        fetched += _fetch(client, ref, digest, w, size, progress, cancel)
            if tap is not None and w.tap is tap:
                got, tap = tap.finish(), None
                if got is not None:
                    facts.put(digest, got)
            return fetched
        except DigestMismatch as e:
            if attempt == 0 and resumed:
                continue  # the partial file from an earlier run may be what is wrong: start over once
            raise RegistryError(f"{ref}: blob {digest} digest mismatch: the registry served content hashing to {e.actual}") from None
        finally:
            if tap is not None:
                tap.invalidate()
                tap.finish()
    raise AssertionError("unreachable")


def _manifest(client: RegistryClient, layout: OCILayout, ref: ImageRef, digest: str) -> Manifest:
    """A manifest by digest: from the layout when stored (content-addressed, cannot have changed), else fetched."""
    if layout.has_blob(digest):
        data = layout.read_blob(digest)
        if sha256_digest(data) == digest:
            return Manifest(data, _media_type(json.loads(data)), digest)
    return client.get_manifest(ref, digest)


def _resolve(*args) -> _Plan:
    try:
        return _resolve_one(*args)
    except MedaiError as e:
        e.about(ref=args[2])
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RegistryError(f"{args[2]}: malformed manifest or index ({type(e).__name__}: {e})", ref=args[2]) from None


def _resolve_one(
    client: RegistryClient,
    layout: OCILayout,
    given: str,
    platforms: list[str],
    expected: str | None,
    cancel: threading.Event,
) -> _Plan:
    ref = parse_ref(given)
    top = _manifest(client, layout, ref, ref.digest) if ref.digest else client.get_manifest(ref)
    if expected and top.digest != expected:
        raise LockDriftError(f"{given}: registry now resolves to {top.digest}, the lock pins {expected}")
    plan = _Plan(given, ref, top)
    doc = top.json()
    if top.is_index:
        available = [platform_string(d.get("platform")) or "unknown" for d in doc.get("manifests", [])]
        for desc in doc.get("manifests", []):
            if not _SHA256.match(str(desc.get("digest", ""))):
                raise RegistryError(f"{ref}: index {top.digest} names manifest {desc.get('digest')!r}: only sha256 is supported")
            if desc.get("mediaType") not in (OCI_MANIFEST, DOCKER_MANIFEST, None):
                continue  # nested indexes / artifacts are not platform images
            if platforms and not any(platform_matches(w, desc.get("platform")) for w in platforms):
                continue  # no platforms given: keep them all
            child = _manifest(client, layout, ref, desc["digest"])
            if child.size != int(desc.get("size", child.size)):
                raise RegistryError(f"{ref}: manifest {desc['digest']} is {child.size} bytes, the index says {desc['size']}")
            plan.children.append(child)
            plan.platforms.append(platform_string(desc.get("platform")) or "unknown")
            plan.blobs.update(_manifest_blobs(ref, child))
            if not is_artifact(child.json()):
                plan.layers.update(d["digest"] for d in child.json()["layers"])
        if not plan.children:
            raise RegistryError(
                f"{ref}: no manifest for {', '.join(platforms)} in its index (it has {', '.join(sorted(set(available))) or 'none'})"
            )
    elif is_artifact(doc):
        plan.blobs.update(_manifest_blobs(ref, top))
        plan.artifact = True
    else:
        plan.blobs.update(_manifest_blobs(ref, top))
        plan.layers.update(d["digest"] for d in doc["layers"])
        cfg = doc["config"]
        plan.prefetched[cfg["digest"]] = fetch_blob_into(client, layout, ref, cfg["digest"], int(cfg["size"]), cancel=cancel)
        try:
            config = json.loads(layout.read_blob(cfg["digest"]))
        except ValueError:
            raise RegistryError(f"{ref}: image config {cfg['digest']} is not JSON") from None
        plat = {k: config.get(k) for k in ("os", "architecture", "variant") if config.get(k)}
        if platforms and not any(platform_matches(w, plat) for w in platforms):
            raise RegistryError(f"{ref}: image is {platform_string(plat) or 'unknown'} only; the bundle needs {', '.join(platforms)}")
        plan.platforms.append(platform_string(plat) or "unknown")
    return plan


def _run_all(ex: ThreadPoolExecutor, futures: list[Future], cancel: threading.Event) -> list:
    """Results in order; on the first failure cancel the rest and raise that failure (not a Cancelled)."""
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    failed = [f for f in futures if f.done() and f.exception() is not None]
    if failed:
        cancel.set()
        for f in futures:
            f.cancel()
        wait(futures)
        errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        real = [e for e in errors if not isinstance(e, Cancelled)]
        raise (real or errors)[0]
    return [f.result() for f in futures]


def collect_images(
    client: RegistryClient,
    layout: OCILayout,
    refs: Iterable[str],
    platforms: Iterable[str],
    expected: dict[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
    layer_facts=None,
) -> list[CollectedImage]:
    """Copy images from their registries into ``layout`` and name them in its index.json.

    Args:
        refs: image references as written in the manifest (``REPO:TAG``, ``REPO@sha256:…``, ``REPO:TAG@sha256:…``;
            docker.io and library/ implied as docker does). Duplicates are collected once.
        platforms: e.g. ``["linux/amd64"]``; an index is reduced to these (the index itself is kept unchanged);
            empty = every platform in the index. A single-platform image must be one of them.
        expected: lock pins, ``{ref: manifest digest}`` keyed by the ref as given or its normalised name; a ref
            that resolves to another digest raises LockDriftError naming the ref and both digests.
        progress: called with the byte count of every blob chunk written (for a progress bar).
        layer_facts: a layer_facts.LayerFactsStore: image layers downloaded now are catalogued on the stream.

    Returns one CollectedImage per distinct ref, in input order. Raises RegistryError (one line, naming the
    image ref) when a registry is unreachable, a tag or blob is missing or a blob's digest does not match;
    completed blobs stay in the layout (the rerun does not fetch them again) but no reference is added.
    """
    refs = list(dict.fromkeys(refs))
    platforms = list(platforms)
    expected = expected or {}
    layout.init()
    cancel = threading.Event()

    def pin(given: str) -> str | None:
        if given in expected:
            return expected[given]
        try:
            return expected.get(parse_ref(given).name)
        except RegistryError:
            return None

    with ThreadPoolExecutor(max_workers=client.workers, thread_name_prefix="medai-oci") as ex:
        plans: list[_Plan] = _run_all(
            ex, [ex.submit(_resolve, client, layout, g, platforms, pin(g), cancel) for g in refs], cancel
        )

        # Every distinct blob once, largest first so the long downloads start early.
        owner: dict[str, tuple[_Plan, int]] = {}
        for plan in plans:
            for d, size in plan.blobs.items():
                owner.setdefault(d, (plan, size))
        todo = sorted(((d, p, s) for d, (p, s) in owner.items()), key=lambda t: -t[2])
        fetched: dict[str, int] = {}
        layers = {d for plan in plans for d in plan.layers}

        def fetch(item: tuple[str, _Plan, int]) -> tuple[str, int]:
            d, plan, size = item
            try:
                return d, fetch_blob_into(client, layout, plan.ref, d, size, progress, cancel,
                                          layer_facts if d in layers else None)
            except MedaiError as e:
                e.about(ref=plan.given)
                raise

        for d, n in _run_all(ex, [ex.submit(fetch, t) for t in todo], cancel):
            fetched[d] = n

    return _store(layout, plans, fetched)


def _store(layout: OCILayout, plans: list[_Plan], fetched: dict[str, int]) -> list[CollectedImage]:
    """Content first (platform manifests, then the top manifest), names last; each blob counted once, as fetched
    now or found already in the layout."""
    entries: list[RefEntry] = []
    out: list[CollectedImage] = []
    counted: set[str] = set()
    for plan in plans:
        for m in plan.children + [plan.top]:
            if layout.write_blob(m.data) != m.digest:
                raise BundleError(f"{plan.ref}: manifest {m.digest} changed while being stored", ref=plan.given)
        entries.append(RefEntry(plan.ref.name, plan.top.digest, plan.top.media_type, plan.top.size))
        got = reused = 0
        for d, size in plan.blobs.items():
            if d in counted:
                continue
            counted.add(d)
            n = fetched.get(d, 0) + plan.prefetched.get(d, 0)
            got += n
            reused += max(0, size - n)
        blobs = sorted(set(plan.blobs) | {m.digest for m in plan.children} | {plan.top.digest})
        out.append(
            CollectedImage(
                ref=plan.ref.name,
                digest=plan.top.digest,
                media_type=plan.top.media_type,
                size=plan.top.size,
                blobs=blobs,
                platforms=plan.platforms,
                source=plan.given,
                fetched_bytes=got,
                reused_bytes=reused,
                artifact=plan.artifact,
            )
        )
    layout.set_refs(entries)
    return out


# ---------------------------------------------------------------------------------------------------- reading back


def is_signature_ref(name: str) -> bool:
    """True for cosign's ``REPO:sha256-<hex>.sig`` (and .att / .sbom) tags."""
    return is_signature_tag(name.rsplit("/", 1)[-1].partition(":")[2])


def signature_ref(image_ref: str, digest: str, suffix: str = ".sig") -> str:
    """The layout reference name of an image's cosign signature manifest: ``REGISTRY/REPO:sha256-<hex>.sig``."""
    r = parse_ref(image_ref)
    return f"{r.repo_name}:{signature_tag(digest, suffix)}"


def list_image_refs(layout: OCILayout) -> dict[str, RefEntry]:
    """Image references in the layout (signature/attestation tags left out)."""
    return {n: e for n, e in layout.refs().items() if not is_signature_ref(n)}


def read_manifest(layout: OCILayout, digest: str) -> dict:
    """A stored manifest or index, parsed, by digest (BundleError when absent)."""
    return layout.read_manifest(digest)[0]


def platform_manifests(layout: OCILayout, digest: str) -> list[tuple[str, str, dict]]:
    """(platform, manifest digest, manifest) for each platform image stored under ``digest`` (index or not).

    For a single manifest the platform comes from its config; children of an index that were not collected are
    skipped.
    """
    doc, mt = layout.read_manifest(digest)
    if "manifests" in doc:
        out = []
        for d in doc["manifests"]:
            if layout.has_blob(d["digest"]):
                out.append((platform_string(d.get("platform")) or "unknown", d["digest"], layout.read_manifest(d["digest"])[0]))
        return out
    try:
        cfg = json.loads(layout.read_blob(doc["config"]["digest"]))
    except (ValueError, KeyError):
        cfg = {}
    return [(platform_string({k: cfg.get(k) for k in ("os", "architecture", "variant") if cfg.get(k)}) or "unknown", digest, doc)]


def platform_digests(layout: OCILayout, digest: str) -> dict[str, str]:
    """{platform: manifest digest} of the platform images stored under ``digest`` (the first for a platform that
    appears twice): what a registry `bundle push` filled serves each platform by."""
    out: dict[str, str] = {}
    for platform, manifest_digest, _ in platform_manifests(layout, digest):
        out.setdefault(platform, manifest_digest)
    return out


def _find_layout_ref(layout: OCILayout, ref: str) -> tuple[str, RefEntry]:
    refs = layout.refs()
    if ref in refs:
        return ref, refs[ref]
    name = parse_ref(ref).name
    if name in refs:
        return name, refs[name]
    raise BundleError(f"{ref}: no such image in the OCI layout {layout.path}")


@dataclass
class PushResult:
    """What push_image did: the destination reference, the digest it now serves, bytes uploaded, and the
    signature/attestation tags pushed beside it."""

    dest: str
    digest: str
    uploaded_bytes: int = 0
    signatures: list[str] = field(default_factory=list)
    fallback: str = ""  # set when the tag points at a platform manifest instead of the refused reduced index


def _push_tree(
    client: RegistryClient, layout: OCILayout, dest: ImageRef, digest: str, media_type: str, tag: str | None,
    ex: ThreadPoolExecutor, fallback: list[str] | None = None,
) -> int:
    """Push a manifest/index and what it references (present children only); returns bytes uploaded.

    ``fallback`` (a list to report into) allows tagging the first present platform manifest when the registry
    refuses a platform-reduced index."""
    data = layout.read_blob(digest)
    doc = json.loads(data)
    uploaded = 0
    if "manifests" in doc:
        present = [d for d in doc["manifests"] if layout.has_blob(d["digest"])]
        for child in present:
            uploaded += _push_tree(client, layout, dest, child["digest"], child.get("mediaType", ""), None, ex)
        missing = len(doc["manifests"]) - len(present)
        try:
            client.put_manifest(dest, tag or digest, data, media_type or _media_type(doc))
        except RegistryError as e:
            if missing and fallback is not None and present and tag:
                child = present[0]
                client.put_manifest(dest, tag, layout.read_blob(child["digest"]), child.get("mediaType") or OCI_MANIFEST)
                fallback.append(f"{platform_string(child.get('platform'))} manifest {child['digest']}")
                return uploaded
            if missing:
                raise RegistryError(
                    f"{dest}: the registry refused the multi-arch index {digest}, whose {missing} left-out platform "
                    f"manifest(s) the bundle does not carry (registries based on distribution 2.x insist on all; "
                    f"`medai bundle push --platform-manifest` tags the site's platform manifest instead): {e}"
                ) from None
            raise
        return uploaded
    blobs = [doc["config"]] + list(doc.get("layers") or [])
    cancel = threading.Event()
    futs = [ex.submit(client.push_blob, dest, b["digest"], int(b["size"]), layout.blob_path(b["digest"])) for b in blobs]
    for b, pushed in zip(blobs, _run_all(ex, futs, cancel)):
        uploaded += int(b["size"]) if pushed else 0
    client.put_manifest(dest, tag or digest, data, media_type or _media_type(doc))
    return uploaded


def present_platform_manifests(layout: OCILayout, digest: str) -> list[str]:
    """The platform manifests of index ``digest`` that the layout holds (empty for a single manifest)."""
    doc = json.loads(layout.read_blob(digest))
    return [d["digest"] for d in doc.get("manifests") or [] if layout.has_blob(d["digest"])]


def push_image(client: RegistryClient, layout: OCILayout, ref: str, dest_ref: str, platform_fallback: bool = False) -> PushResult:
    """Copy image ``ref`` from the layout to ``dest_ref`` (``HOST/REPO[:TAG]``) with its signature manifests.

    The manifest or index is pushed byte for byte, so the digest is unchanged; with its present platform
    manifests and all their blobs (blobs the registry has are skipped). The tag is dest_ref's, else the source
    ref's; a digest-only source is pushed by digest. Then every layout reference named
    ``<any repo>:sha256-<hex>.sig`` (also .att, .sbom) for the image's digest — the one under the same
    repository first — is pushed to the destination repository under that same tag, so cosign finds it.

    A multi-arch index whose platforms were reduced is refused by registries built on distribution 2.x
    (docker-registry, Harbor 2): RegistryError, unless ``platform_fallback``, which tags the first present
    platform manifest instead (``result.digest``/``fallback`` say so; pulls by the index digest then fail,
    and signatures made over the index digest do not cover that manifest).
    Raises RegistryError/BundleError naming the ref.
    """
    name, entry = _find_layout_ref(layout, ref)
    src = parse_ref(name)
    dest = parse_ref(dest_ref)
    if dest.digest and dest.digest != entry.digest:
        raise RegistryError(f"{dest_ref}: destination digest differs from the bundle's {entry.digest} for {name}")
    explicit_tag = dest_ref.rsplit("/", 1)[-1].partition("@")[0].count(":") == 1
    tag = dest.tag if explicit_tag else src.tag
    result = PushResult(dest=f"{dest.repo_name}:{tag}" if tag else f"{dest.repo_name}@{entry.digest}", digest=entry.digest)
    with ThreadPoolExecutor(max_workers=client.workers, thread_name_prefix="medai-push") as ex:
        used: list[str] | None = [] if platform_fallback else None
        result.uploaded_bytes += _push_tree(client, layout, dest, entry.digest, entry.media_type, tag, ex, used)
        if used:
            result.fallback = used[0]
            result.digest = used[0].rsplit(" ", 1)[-1]
        # Signatures of the index and of its platform manifests (the one a fallback tags, which is what a
        # registry enforcing cosign signatures, e.g. Harbor, checks when that tag is pulled).
        wanted = [d.replace(":", "-") for d in (entry.digest, *present_platform_manifests(layout, entry.digest))]
        sigs: dict[str, tuple[str, RefEntry]] = {}
        for n, e in sorted(layout.refs().items(), key=lambda kv: (parse_ref(kv[0]).repo_name != src.repo_name, kv[0])):
            if not is_signature_ref(n):
                continue
            t = n.rsplit("/", 1)[-1].partition(":")[2]
            if any(t.startswith(w + ".") for w in wanted) and t not in sigs:
                sigs[t] = (n, e)
        for t, (_n, e) in sorted(sigs.items()):
            result.uploaded_bytes += _push_tree(client, layout, dest, e.digest, e.media_type, t, ex)
            result.signatures.append(f"{dest.repo_name}:{t}")
    return result
