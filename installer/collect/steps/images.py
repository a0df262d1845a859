"""Images: every image the charts and the manifest need, into the bundle's OCI layout (upstream signatures
verified where the manifest names a key); their artifacts once the layout is pruned."""
from __future__ import annotations

from pathlib import Path

from installer.bundle.artifacts import Artifact
from installer.collect.context import BuildContext
from installer.core.errors import LockDriftError, MedaiError
from installer.core.hashing import digest_hex
from installer.oci.images import collect_images, platform_digests
from installer.oci.layout import OCILayout
from installer.oci.mirrors import MirroredClient
from installer.oci.refs import normalize_ref
from installer.oci.registry import RegistryClient
from installer.sbom import layer_facts
from installer.trust.cosign import verify_upstream
from installer.trust.signing import store_signature


def collect(ctx: BuildContext) -> list[Artifact]:
    # SBOM facts of each layer, gathered while it downloads (or once from the layout), kept by digest outside the bundle
    ctx.layer_facts = layer_facts.LayerFactsStore(ctx.opts.sbom_cache_dir or layer_facts.default_dir())
    if not ctx.needed_by:
        return []

    opts = ctx.opts
    ctx.oci = OCILayout(ctx.layout.oci, ctx.layout.tmp)
    client = opts.registry_client or RegistryClient()
    mirrors = {**ctx.spec.mirrors, **opts.mirrors}
    if mirrors:
        client = MirroredClient(client, mirrors)
    try:
        _collect(ctx, client)
    finally:
        if opts.registry_client is None:
            client.close()
    for im in ctx.images:
        ctx.new_lock.images[im.ref] = im.digest
    if ctx.upstream and opts.sign_key is None:
        # no signing key: still carry the verified upstream signatures next to the images

        for im in ctx.images:
            if im.digest in ctx.upstream:
                store_signature(ctx.oci, im.ref, im.digest, ctx.upstream[im.digest])
    return []


def _collect(ctx: BuildContext, client) -> None:
    needed_by, old_lock = ctx.needed_by, ctx.old_lock
    if ctx.opts.locked:
        for ref in needed_by:
            if ref not in old_lock.images:
                raise LockDriftError(f"image {ref}: not in the lock file (rebuild without --locked to add it)")
    try:
        with ctx.progress.task(f"images ({len(needed_by)})") as advance:
            ctx.images = collect_images(client, ctx.oci, list(needed_by), ctx.platforms,
                                        old_lock.images if ctx.opts.locked else None, advance, ctx.layer_facts)
    except MedaiError as e:
        charts = needed_by.get(e.ref or "", [])
        if charts:  # say which chart wanted the image that could not be collected
            raise type(e)(f"{e} (needed by chart {', '.join(charts)})", ref=e.ref) from None
        raise
    keyed = {normalize_ref(im.ref): im.key for im in ctx.spec.images if im.key}
    for im in ctx.images:
        ctx.progress.counters.fetched(im.fetched_bytes)
        ctx.progress.counters.reused(im.reused_bytes)
        if im.ref in keyed:
            key_path = Path(keyed[im.ref])
            ctx.upstream[im.digest] = verify_upstream(client, im.ref, im.digest,
                                                      key_path if key_path.is_absolute() else ctx.base_dir / key_path)


def artifacts(ctx: BuildContext) -> list[Artifact]:
    out = []
    for im in ctx.images:
        sizes = {d: (ctx.oci.blob_path(d).stat().st_size) for d in im.blobs}
        out.append(Artifact("image", im.ref, f"oci/blobs/sha256/{digest_hex(im.digest)}", sum(sizes.values()),
                            digest_hex(im.digest), ref=im.ref, digest=im.digest,
                            paths=[f"oci/blobs/sha256/{digest_hex(d)}" for d in im.blobs],
                            neededBy=ctx.needed_by.get(im.ref, []),
                            meta={"platforms": im.platforms, "mediaType": im.media_type, "source": im.source,
                                  **({"artifact": True} if im.artifact else {"platformDigests": platform_digests(ctx.oci, im.digest)})}))
    return out

