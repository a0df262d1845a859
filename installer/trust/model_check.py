"""Re-hash a model directory against a bundle index: standard library only, so it runs with a bare python3
(an init container on a GPU node) as well as inside medai (installer.trust.verify.verify_model).

    python3 model_check.py --index /path/index.json --model NAME --path /models/NAME     # exit 0 ok, 1 refused

The index must have been authenticated first (its signature checked on the control host with
``medai bundle verify --key``, or here with ``medai bundle verify --model … --key``): this script trusts it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

CHUNK = 4 * 1024 * 1024


class ModelIndexError(Exception):
    """The index does not describe the model (not a tampering of the directory)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


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


def check_model_dir(index: dict, name: str, root: str | os.PathLike) -> tuple[int, int, list[str]]:
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
    verified = 0
    for rel, entry in sorted(expected.items()):
        p = root / rel
        if rel not in present:
            problems.append(f"missing: {rel}")
        elif p.is_symlink() or not p.is_file():
            problems.append(f"unsafe: {rel}: not a regular file")
        elif p.stat().st_size != entry.get("size"):
            problems.append(f"altered: {rel}: size {p.stat().st_size}, index says {entry.get('size')}")
        elif _sha256(p) != entry.get("sha256"):
            problems.append(f"altered: {rel}: sha256 differs from the signed index")
        else:
            verified += int(entry["size"])
    for rel in sorted(present - set(expected)):
        problems.append(f"extra: {rel}: not part of model {name} in the index")
    return len(expected), verified, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Re-hash a model directory against a (verified) medai bundle index.")
    ap.add_argument("--index", required=True, help="index.json of the bundle (already signature-checked)")
    ap.add_argument("--model", required=True, help="model name as in the bundle manifest")
    ap.add_argument("--path", required=True, help="the model directory vLLM will load")
    args = ap.parse_args(argv)
    try:
        index = json.loads(Path(args.index).read_bytes())
        files, nbytes, problems = check_model_dir(index, args.model, args.path)
    except (OSError, ValueError, ModelIndexError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"problem: model {args.model}: {p}", file=sys.stderr)
    print(f"model {args.model} at {args.path}: {'PASSED' if not problems else 'REFUSED'} ({files} files, {nbytes} bytes verified)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
