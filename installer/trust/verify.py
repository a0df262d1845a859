"""Verify a bundle behind the gap: index signature, every file's sha256, every image signature, optionally the
keyless Sigstore signature; then write the evidence (a JSON report plus a readable summary).

What a passing ``verify_bundle(key=…)`` proves: index.json was signed by the holder of the private key whose
public key fingerprint the report names; every file the index lists is present with exactly the hashed bytes;
nothing else is in the bundle; each image's signature manifest verifies with the key and names that image's
digest. Without a key only the hashes are checked, and the result says so in capitals.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from installer.bundle.artifacts import BundleIndex
from installer.bundle.layout import BundleLayout
from installer.bundle.verify import VerifyResult, artifact_owners, verify_files
from installer.core.atomic import fsync_dir
from installer.core.errors import BundleError, TrustError
from installer.core.resources import check_state_dir, state_dir
from installer.core.textsafe import safe_text
from installer.oci.cosign_tags import signature_tag
from installer.oci.layout import OCILayout
from installer.trust import sigstore as sigstore_mod
from installer.trust.cosign import SignatureCheck, check_layers, parse_signature_manifest
from installer.trust.index_signature import index_signature_problem, read_signature_file
from installer.trust.keys import fingerprint, load_public_key
from installer.trust.model_check import ModelIndexError, check_model_dir

MAX_SMALL_BLOB = 4 * 1024 * 1024
NOT_CHECKED = "SIGNATURES NOT CHECKED: no --key given; only file hashes were verified"


@dataclass
class ArtifactResult:
    kind: str
    name: str
    ref: str = ""
    digest: str = ""
    files: int = 0
    result: str = "ok"  # ok | failed | unverified (hashes match an index whose signature failed)
    signature: str = "not checked"  # verified | failed | missing | not checked | n/a
    problems: list[str] = field(default_factory=list)


@dataclass
class BundleVerification:
    bundle: Path
    started: datetime
    finished: datetime | None = None
    key_path: str | None = None
    key_fingerprint: str | None = None
    signed: bool = False  # the bundle carries signatures (index.json.sig, .sig manifests or a Sigstore bundle)
    signatures_checked: bool = False
    index_sha256: str = ""
    index_signature: str = "not checked"
    sigstore: dict | None = None
    files: VerifyResult | None = None
    images: list[SignatureCheck] = field(default_factory=list)
    artifacts: list[ArtifactResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    report_path: Path | None = None
    summary_path: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def warnings(self) -> list[str]:
        out = []
        if not self.signatures_checked:
            what = "this bundle IS signed, but " if self.signed else "this bundle carries no signatures and "
            out.append(f"{NOT_CHECKED} ({what}nothing proves who built it)")
        return out

    def to_report(self) -> dict:
        idx = self.files.index if self.files else {}
        return {
            "apiVersion": "medai/v1",
            "kind": "VerificationReport",
            "result": "passed" if self.ok else "failed",
            "bundle": {"path": str(self.bundle), "name": idx.get("name"), "version": idx.get("version"),
                       "created": idx.get("created"), "indexSha256": self.index_sha256},
            "checkedAt": self.started.isoformat(timespec="seconds"),
            "durationSeconds": round(((self.finished or self.started) - self.started).total_seconds(), 3),
            "tool": {"name": "medai", "version": _version()},
            "signatures": {
                "checked": self.signatures_checked,
                "bundleIsSigned": self.signed,
                "key": {"path": self.key_path, "fingerprint": self.key_fingerprint} if self.key_fingerprint else None,
                "indexSignature": self.index_signature,
                "sigstore": self.sigstore,
                "warning": self.warnings[0] if self.warnings else None,
            },
            "checks": [
                "index.json is a medai bundle index",
                *(["index.json.sig verifies over the exact bytes of index.json with the given key",
                   "every image's cosign signature verifies with the key and names that image's digest"]
                  if self.signatures_checked and self.key_fingerprint else []),
                *(["index.sigstore.json verifies offline for the given identity and issuer"] if self.sigstore else []),
                "every file listed in index.json exists, is a regular file inside the bundle, and has the listed size and sha256",
                "no file, directory symlink or special file exists that index.json does not list",
            ],
            "files": {"listed": len(idx.get("files", [])), "hashed": len(self.files.checked) if self.files else 0,
                      "bytesHashed": self.files.bytes_hashed if self.files else 0},
            "artifacts": [asdict(a) for a in self.artifacts],
            "problems": list(self.problems),
        }

    def summary(self) -> str:
        lines = [
            f"medai bundle verification: {'PASSED' if self.ok else 'FAILED'}",
            f"bundle:      {self.bundle}",
            f"checked at:  {self.started.isoformat(timespec='seconds')}",
            f"index:       sha256:{self.index_sha256}",
        ]
        if self.key_fingerprint:
            lines.append(f"key:         {self.key_path} ({self.key_fingerprint})")
            lines.append(f"index sig:   {self.index_signature}")
            ok_images = sum(1 for c in self.images if c.ok)
            lines.append(f"image sigs:  {ok_images}/{len(self.images)} verified")
        if self.sigstore:
            lines.append(f"sigstore:    {self.sigstore['result']} ({self.sigstore['identity']} via {self.sigstore['issuer']})")
        for w in self.warnings:
            lines.append(f"WARNING:     {w}")
        if self.files:
            lines.append(f"files:       {len(self.files.checked)} hashed, {self.files.bytes_hashed} bytes")
        for a in self.artifacts:
            mark = {"ok": "ok ", "unverified": "?? "}.get(a.result, "BAD")
            sig = f", signature {a.signature}" if a.kind == "image" else ""
            who = a.ref or a.name if a.kind == "image" else a.name
            lines.append(f"  [{mark}] {a.kind:6} {who} ({a.files} files{sig})")
        for p in self.problems:
            lines.append(f"problem:     {p}")
        return "\n".join(safe_text(line) for line in lines) + "\n"  # a name from the stick stays on its line


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("medai")
    except Exception:
        return "unknown"


def _read_small_blob(oci: OCILayout, digest: str) -> bytes:
    """A manifest or payload, read only if it is a regular file of sane size whose bytes hash to its name."""
    p = oci.blob_path(digest)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        raise TrustError(f"blob {digest} missing") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SMALL_BLOB:
        raise TrustError(f"blob {digest} is not a regular file of at most {MAX_SMALL_BLOB} bytes")
    data = p.read_bytes()
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise TrustError(f"blob {digest} does not hash to its name")
    return data


def check_layout_image(oci: OCILayout, refs: dict, ref: str, digest: str, pub) -> SignatureCheck:
    """Find ``<repo>:sha256-<hex>.sig`` for the image in the layout and check it."""
    tag = signature_tag(digest)
    candidates = [e for name, e in refs.items() if name.endswith(":" + tag)]
    if not candidates:
        return SignatureCheck(ref, digest, False, f"no signature manifest ({tag}) in the OCI layout")
    last = None
    for entry in candidates:
        try:
            layers = parse_signature_manifest(_read_small_blob(oci, entry.digest), lambda d: _read_small_blob(oci, d), entry.name)
        except TrustError as e:
            last = SignatureCheck(ref, digest, False, f"signature manifest unreadable: {e}")
            continue
        last = check_layers(layers, ref, digest, pub)
        if last.ok:
            return last
    return last


def _check_index_signature(layout: BundleLayout, index_bytes: bytes, pub) -> str | None:
    """None when the signature verifies, else the problem (installer.trust.index_signature, the one check)."""
    try:
        sig_file = read_signature_file(layout.index_sig)
    except TrustError as e:
        return str(e)
    return index_signature_problem(pub, index_bytes, sig_file, layout.index_sig.name)


def image_signature_problems(root: str | os.PathLike, index: dict, pub) -> list[str]:
    """Each image the (verified) index lists must carry a signature manifest in ROOT/oci that verifies with `pub`.

    Used on the install's private copy, whose files already matched the verified index as they were copied.
    """
    root = Path(root)
    oci = OCILayout(root / "oci", root / ".tmp")
    try:
        refs = oci.refs() if oci.index_path.is_file() else {}
    except BundleError as e:
        return [f"oci/index.json: {e}"]
    out = []
    for a in BundleIndex.of(index).images():
        if a.digest:
            ref = a.ref or a.name
            check = check_layout_image(oci, refs, ref, a.digest, pub)
            if not check.ok:
                out.append(f"image {ref}: {check.detail}")
    return out


def verify_bundle(
    bundle: str | os.PathLike,
    key: str | os.PathLike | None = None,
    sigstore_identity: str | None = None,
    sigstore_issuer: str | None = None,
    sigstore_trusted_root: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
    report: str | os.PathLike | None = None,
    write_report: bool = True,
    on_total: Callable[[int], None] | None = None,
) -> BundleVerification:
    """Check everything, collect every problem (does not stop at the first), write the report.

    Raises only for unusable input (no bundle, unreadable key); a failed check is ``result.ok == False``.
    """
    started = datetime.now(UTC)
    layout = BundleLayout.at(bundle)
    layout.require_index()  # a clear error when this is not a bundle at all; nothing is parsed yet
    if bool(sigstore_identity) != bool(sigstore_issuer):
        raise TrustError("--sigstore-identity and --sigstore-issuer must be given together")
    pub = load_public_key(key) if key else None
    res = BundleVerification(bundle=layout.root, started=started)
    if pub is not None:
        res.key_path, res.key_fingerprint = str(key), fingerprint(pub)

    for special in (layout.index, layout.index_sig, layout.index_sigstore):
        if special.is_symlink():
            res.problems.append(f"unsafe: {special.name}: symlink to {os.readlink(special)}")
    index_bytes = layout.read_index_bytes()
    res.index_sha256 = hashlib.sha256(index_bytes).hexdigest()

    # 1. index signature: it pins every file's hash, so it is checked first, before index.json is even parsed
    if pub is not None:
        problem = _check_index_signature(layout, index_bytes, pub)
        res.index_signature = "verified" if problem is None else "failed"
        if problem:
            res.problems.append(problem)
    index = layout.parse_index(index_bytes)
    if on_total is not None:  # the bytes to hash, for a progress bar: known only once the index may be parsed
        on_total(sum(f.get("size", 0) for f in index["files"] if isinstance(f, dict) and isinstance(f.get("size"), int)))

    oci = OCILayout(layout.oci, layout.tmp)
    res.signed = index.get("signed") is True or layout.index_sig.exists() or layout.index_sigstore.exists()
    # 2. keyless signature over the same bytes
    if sigstore_identity:
        res.sigstore = _check_sigstore(layout, sigstore_identity, sigstore_issuer, sigstore_trusted_root, res)
    res.signatures_checked = pub is not None or bool(res.sigstore)

    # 3. every file
    files = verify_files(layout.root, progress=progress)
    res.files = files
    if files.index != index:
        res.problems.append("index.json: changed while it was being verified")
    for p in files.problems:
        res.problems.append(str(p))

    refs = _checked_oci_refs(oci, files, res)
    res.signed = res.signed or any(n.endswith(".sig") for n in refs)
    # 4. image signatures, and the per-artifact view the auditor reads
    _check_artifacts(index, files, oci, refs, pub, res)

    if res.index_signature == "failed":
        # every hash above was compared with an index nobody vouches for
        for ar in res.artifacts:
            if ar.result == "ok":
                ar.result = "unverified"
    res.finished = datetime.now(UTC)
    if write_report:
        _write_report(layout, res, Path(report) if report else None)
    return res


def _checked_oci_refs(oci: OCILayout, files, res: BundleVerification) -> dict:
    """oci/index.json's references, parsed only when its bytes are the ones the index lists (whose own signature
    was checked when a key was given): nothing unvouched-for is parsed."""
    if any(fc.path == "oci/index.json" and fc.ok for fc in files.checked):
        try:
            return oci.refs()
        except BundleError as e:
            res.problems.append(f"oci/index.json: {e}")
    elif oci.index_path.exists() or oci.index_path.is_symlink():
        if not any(p.path == "oci/index.json" for p in files.problems):
            res.problems.append("oci/index.json: not checked against index.json: not parsed")
    return {}


def _check_artifacts(index, files, oci: OCILayout, refs: dict, pub, res: BundleVerification) -> None:
    """One ArtifactResult per artifact: its files' problems, and for an image its signature in the layout."""
    owners = artifact_owners(index)
    bad_paths: dict[str, list[str]] = {}
    for p in files.problems:
        bad_paths.setdefault(owners.get(p.path, ""), []).append(str(p))
    for a in index.artifacts():
        ar = ArtifactResult(a.kind, a.name, a.ref, a.digest or "", len(a.paths), problems=list(bad_paths.get(a.label, [])))
        if ar.kind == "image":
            if pub is not None and ar.digest:
                check = check_layout_image(oci, refs, ar.ref or ar.name, ar.digest, pub)
                res.images.append(check)
                ar.signature = "verified" if check.ok else "failed"
                if not check.ok:
                    msg = f"image {ar.ref or ar.name}: {check.detail}"
                    ar.problems.append(msg)
                    res.problems.append(msg)
        else:
            ar.signature = "n/a (covered by the index signature)" if pub is not None else "not checked"
        ar.result = "failed" if ar.problems else "ok"
        res.artifacts.append(ar)


def _check_sigstore(layout: BundleLayout, identity: str, issuer: str, trusted_root, res: BundleVerification) -> dict:
    out = {"identity": identity, "issuer": issuer, "trustedRoot": None, "result": "failed", "detail": ""}
    if not layout.index_sigstore.is_file():
        out["detail"] = f"{layout.index_sigstore.name}: missing: the bundle has no keyless signature"
        res.problems.append(out["detail"])
        return out
    carried = layout.root / sigstore_mod.CARRIED_ROOT
    try:
        if carried.is_file():
            root = sigstore_mod.anchored_root(carried, Path(trusted_root) if trusted_root else None)
        else:
            root = Path(trusted_root) if trusted_root else None
        check = sigstore_mod.check_artifact(layout.index, layout.index_sigstore, identity, issuer, offline=True, trusted_root=root)
    except TrustError as e:
        out["detail"] = str(e)
        res.problems.append(str(e))
        return out
    out.update(trustedRoot=check.trusted_root, result="verified" if check.ok else "failed", detail=check.detail)
    if not check.ok:
        res.problems.append(f"index.json: {check.detail}")
    return out


def default_report_dir(bundle: Path | None = None) -> Path:
    """Reports go outside the bundle (the stick may be read-only, and is hostile): the state directory, which
    must not be on the bundle's filesystem either (installer.core.resources.check_state_dir)."""

    home = state_dir()
    if bundle is not None:
        check_state_dir(home, bundle)
    return home / "reports"


def create_new_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file that must not exist yet: O_CREAT|O_EXCL|O_NOFOLLOW (a planted file or symlink is never
    followed or overwritten), fsynced with its directory."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def _write_report(layout: BundleLayout, res: BundleVerification, target: Path | None) -> None:
    """``target``: a directory (default the state directory's reports/) or an explicit PATH.json."""
    stamp = res.started.strftime("%Y%m%dT%H%M%SZ")
    report_bytes = (json.dumps(res.to_report(), indent=2, sort_keys=False) + "\n").encode()
    summary_bytes = res.summary().encode()
    explicit = target is not None and target.suffix == ".json"
    folder = target.parent if explicit else (target or default_report_dir(layout.root))
    try:
        if folder.resolve().is_relative_to(layout.root.resolve()):  # checked before anything is created there
            raise BundleError(f"{safe_text(folder)}: inside the bundle; reports are written outside it (use --report DIR)")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        n = 1
        while True:
            json_path = target if explicit else folder / (f"verify-{stamp}.json" if n == 1 else f"verify-{stamp}-{n}.json")
            summary = json_path.with_suffix(".txt")
            try:
                create_new_file(summary, summary_bytes)
            except FileExistsError:
                if explicit:
                    raise BundleError(f"{safe_text(summary)}: exists; refusing to overwrite a report (choose another --report)") from None
                n += 1
                continue
            try:
                create_new_file(json_path, report_bytes)
            except FileExistsError:
                summary.unlink()
                if explicit:
                    raise BundleError(f"{safe_text(json_path)}: exists; refusing to overwrite a report (choose another --report)") from None
                n += 1
                continue
            break
    except OSError as e:
        raise BundleError(f"{safe_text(folder)}: cannot write the verification report: {e.strerror} (use --report DIR)") from None
    res.report_path, res.summary_path = json_path, summary


# ------------------------------------------------------------------------------------------ model weights


@dataclass
class ModelVerification:
    model: str
    path: Path
    ok: bool
    files: int
    bytes: int
    problems: list[str]
    index_signature: str


def verify_model(bundle: str | os.PathLike, name: str, path: str | os.PathLike, key: str | os.PathLike | None = None,
                 require_signature: bool = False) -> ModelVerification:
    """Re-hash a model directory (on a GPU node, before vLLM loads it) against the bundle index.

    ``bundle`` is a directory holding index.json (and index.json.sig): the bundle itself, or the copy the install
    puts on the node. With ``key`` the index signature is checked first. Every file the index lists for the model
    must be in ``path`` with its sha256; any other file, and any symlink, is refused (vLLM would load it).
    The hashing is installer.trust.model_check's (stdlib only, also runnable alone with a bare python3).
    """
    layout = BundleLayout.at(bundle)
    layout.require_index()
    index_bytes = layout.read_index_bytes()
    sig_state = "not checked"
    if key is not None:
        problem = _check_index_signature(layout, index_bytes, load_public_key(key))
        if problem:
            raise TrustError(f"model {name}: {problem}")
        sig_state = "verified"
    elif require_signature:
        raise TrustError(f"model {name}: a public key is required to trust {layout.index}")
    index = layout.parse_index(index_bytes)  # only after its signature was checked
    try:
        files, nbytes, problems = check_model_dir(index, name, path)
    except ModelIndexError as e:
        raise TrustError(f"{e} ({layout.index})") from None
    return ModelVerification(name, Path(path), not problems, files, nbytes, problems, sig_state)
