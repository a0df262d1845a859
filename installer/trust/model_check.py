"""Re-hash a model directory against a bundle index: standard library only, so it runs with a bare python3
(an init container on a GPU node) as well as inside medai (installer.trust.verify.verify_model).

    python3 model_check.py --index /path/index.json --model NAME --path /models/NAME     # exit 0 ok, 1 refused
        [--workers N] [--termination-log /dev/termination-log]

Files are hashed streamed (fixed-size reads, sequential read-ahead hinted) and in parallel (a thread per file up
to --workers: hashlib releases the GIL on large buffers, so N files hash on N cores while the disk streams).
With --termination-log the verdict and the first problems are written there too (Kubernetes shows that file
in the pod's status: ``kubectl describe pod`` names the altered file).

The index must have been authenticated first (its signature checked on the control host with
``medai bundle verify --key``, or here with ``medai bundle verify --model … --key``): this script trusts it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 4 * 1024 * 1024
TERMINATION_LOG_MAX = 4096  # Kubernetes keeps at most 4096 bytes of a termination message


class ModelIndexError(Exception):
    """The index does not describe the model (not a tampering of the directory)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while n := os.readv(fd, [buf]):
            h.update(view[:n])
    finally:
        os.close(fd)
    return h.hexdigest()


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


def expected_files(index: dict, name: str) -> dict[str, dict]:
    """{path inside the model dir: {"size", "sha256"}} for model ``name``, from the index."""
    arts = index.get("artifacts", [])
    model = next((a for a in arts if a.get("kind") == "model" and a.get("name") == name), None)
    if model is None:
        known = sorted(str(a.get("name")) for a in arts if a.get("kind") == "model")
        raise ModelIndexError(f"model {name}: not in the index (models there: {', '.join(known) or 'none'})")
    prefix = (model.get("path") or f"models/{name}").rstrip("/") + "/"
    listed = {e.get("path"): e for e in index.get("files", [])}
    out: dict[str, dict] = {}
    for p in model.get("paths") or []:
        if p not in listed:
            raise ModelIndexError(f"model {name}: {p} is in the artifact but not in the index's files list")
        if not p.startswith(prefix) or ".." in Path(p).parts:
            raise ModelIndexError(f"model {name}: {p} is not under {prefix}")
        out[p[len(prefix):]] = listed[p]
    if not out:
        raise ModelIndexError(f"model {name}: the index lists no files for it")
    return out


def check_model_dir(index: dict, name: str, root: str | os.PathLike, workers: int | None = None) -> tuple[int, int, list[str]]:
    """(files expected, bytes verified, problems). Missing, altered, extra files and any symlink are problems."""
    expected = expected_files(index, name)
    root = Path(root)
    if not root.is_dir():
        raise ModelIndexError(f"model {name}: {root} is not a directory")
    problems: list[str] = []
    present: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for d in dirnames:
            if (Path(dirpath) / d).is_symlink():
                problems.append(f"unsafe: {(Path(dirpath) / d).relative_to(root).as_posix()}: symlinked directory")
        for f in filenames:
            present.add((Path(dirpath) / f).relative_to(root).as_posix())
    to_hash: list[tuple[str, Path, dict]] = []
    for rel, entry in sorted(expected.items()):
        p = root / rel
        if rel not in present:
            problems.append(f"missing: {rel}")
        elif p.is_symlink() or not p.is_file():
            problems.append(f"unsafe: {rel}: not a regular file")
        elif p.stat().st_size != entry.get("size"):
            problems.append(f"altered: {rel}: size {p.stat().st_size}, index says {entry.get('size')}")
        else:
            to_hash.append((rel, p, entry))
    # largest first, so one big shard does not start last and leave the other workers idle
    to_hash.sort(key=lambda t: -int(t[2].get("size") or 0))
    verified = 0
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for (rel, _p, entry), digest in zip(to_hash, pool.map(lambda t: _sha256(t[1]), to_hash)):
            if digest != entry.get("sha256"):
                problems.append(f"altered: {rel}: sha256 differs from the signed index")
            else:
                verified += int(entry["size"])
    for rel in sorted(present - set(expected)):
        problems.append(f"extra: {rel}: not part of model {name} in the index")
    return len(expected), verified, sorted(problems, key=lambda p: p.split(": ", 2)[1] if ": " in p else p)


def write_termination_log(path: str, text: str) -> None:
    data = text.encode()[:TERMINATION_LOG_MAX]
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:  # the verdict is on stderr as well; a missing log file must not hide it
        print(f"warning: cannot write {path}: {e.strerror}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Re-hash a model directory against a (verified) medai bundle index.")
    ap.add_argument("--index", required=True, help="index.json of the bundle (already signature-checked)")
    ap.add_argument("--model", required=True, help="model name as in the bundle manifest")
    ap.add_argument("--path", required=True, help="the model directory vLLM will load")
    ap.add_argument("--workers", type=int, default=None, help="files hashed at once (default: CPUs, at most 8)")
    ap.add_argument("--termination-log", default=None, help="also write the verdict here (/dev/termination-log)")
    ap.add_argument("--json-out", default=None, help="also write a small JSON result here (medai verify's evidence)")
    args = ap.parse_args(argv)
    try:
        index = json.loads(Path(args.index).read_bytes())
        files, nbytes, problems = check_model_dir(index, args.model, args.path, args.workers)
    except (OSError, ValueError, ModelIndexError) as e:
        print(f"error: {e}", file=sys.stderr)
        if args.termination_log:
            write_termination_log(args.termination_log, f"weight check: error: {e}\n")
        _json_out(args, "error", 0, 0, [str(e)])
        return 2
    lines = [f"problem: model {args.model}: {p}" for p in problems]
    for line in lines:
        print(line, file=sys.stderr)
    verdict = f"model {args.model} at {args.path}: {'PASSED' if not problems else 'REFUSED'} ({files} files, {nbytes} bytes verified)"
    print(verdict)
    if args.termination_log:
        write_termination_log(args.termination_log, "\n".join([verdict, *lines]) + "\n")
    _json_out(args, "passed" if not problems else "refused", files, nbytes, problems)
    return 0 if not problems else 1


def _json_out(args: argparse.Namespace, result: str, files: int, nbytes: int, problems: list[str]) -> None:
    if not args.json_out:
        return
    doc = {"model": args.model, "path": args.path, "result": result, "files": files, "bytesVerified": nbytes,
           "problems": problems[:20], "problemCount": len(problems)}
    tmp = args.json_out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
