"""What one layer tells the catalogers, gathered in one pass over its bytes and remembered by the layer's digest.

A layer's facts do not depend on the image it is in: its entries (path, directory or not), whiteouts and opaque
markers, and for every member some cataloger wants (``wants`` is a pure function of path and tar header) what that
cataloger would read: the bytes of a package database, or a Go binary's decoded build info. So the facts can be
gathered while the blob streams in from the registry (``StreamTap``, fed by the blob writer after the hash), or
once from a blob already in the layout, and kept in a small cache file per digest (``LayerFactsStore``).
``replay`` then merges the facts of an image's layers top to bottom exactly as ``rootfs.walk`` does (same
visibility rules, same visit order), so the SBOM is byte for byte the one the walk gives. Anything unusual (a tar
error, a cap reached, a hardlink whose target content was not kept, a database too big to keep) marks the facts
incomplete, and the caller walks that image from disk instead, which raises the same errors.
"""
from __future__ import annotations

import base64
import gzip
import io
import json
import queue
import tarfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import zstandard

from installer.core.atomic import atomic_write_bytes
from installer.core.hashing import digest_hex
from installer.core.resources import cache_dir
from installer.sbom.catalogers import OsReleaseReader, all_catalogers, golang
from installer.sbom.package import MAX_METADATA
from installer.sbom.rootfs import MAX_WALK_BYTES, MAX_WALK_ENTRIES, WH_OPAQUE, WH_PREFIX, member_path, parent_dirs

# Bump when a cataloger's wants/read changes: facts of an older version are ignored, not trusted.
FACTS_VERSION = 1
CHUNK = 1 << 20
RAW_MAX = 16 * 1024 * 1024  # a package database bigger than this is not kept in the facts (walked from disk)
GO = "go-binary"


class _Backward(Exception):
    """A reader asked to seek backwards in a forward-only stream."""


class _Forward:
    """A forward-only stream over chunks pulled from ``pull(n)`` (b"" at the end); forward seeks skip, no copy."""

    def __init__(self, pull: Callable[[int], bytes]):
        self._pull = pull
        self._buf = b""
        self._off = 0
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._pull(CHUNK)
        if not data:
            self._eof = True
            return False
        self._buf, self._off = data, 0
        return True

    def peek(self, n: int) -> bytes:
        while len(self._buf) - self._off < n and not self._eof:
            rest = self._buf[self._off:]
            if not self._fill():
                self._buf, self._off = rest, 0
                break
            self._buf, self._off = rest + self._buf, 0
        return self._buf[self._off:self._off + n]

    def read(self, n: int = -1) -> bytes:
        parts = []
        while n != 0:
            if self._off >= len(self._buf) and not self._fill():
                break
            avail = len(self._buf) - self._off
            take = avail if n < 0 else min(n, avail)
            parts.append(self._buf[self._off:self._off + take] if take < avail or self._off else self._buf)
            self._off += take
            self._pos += take
            if n > 0:
                n -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence != 0:
            raise io.UnsupportedOperation("seek from the end of a stream")
        if pos < self._pos:
            raise _Backward()
        skip = pos - self._pos
        while skip:
            if self._off >= len(self._buf) and not self._fill():
                break
            take = min(skip, len(self._buf) - self._off)
            self._off += take
            self._pos += take
            skip -= take
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _go_json(result) -> object:
    if isinstance(result, golang.BuildInfo):
        return {"go_version": result.go_version, "path": result.path, "main": list(result.main),
                "deps": [list(d) for d in result.deps], "build": result.build}
    return result  # None or "old-format"


def _go_result(value) -> object:
    if isinstance(value, dict):
        return golang.BuildInfo(go_version=value["go_version"], path=value["path"], main=tuple(value["main"]),
                                deps=[tuple(d) for d in value["deps"]], build=dict(value["build"]))
    return value


def _record(claimant: str, member: tarfile.TarInfo, f) -> list | None:
    """What ``claimant`` reads from this member, as JSON; None when it is not kept (walked from disk instead)."""
    if claimant == GO:
        head = f.read(4)
        if head != b"\x7fELF":
            return ["go", "not-elf"]
        return ["go", _go_json(golang.scan(f, already=head))]
    if member.size > min(MAX_METADATA, RAW_MAX):
        return None
    return ["raw", base64.b64encode(f.read(member.size)).decode()]


def scan_layer(read: Callable[[int], bytes]) -> dict:
    """The facts of one layer from its (possibly compressed) bytes, read front to back once."""
    raw = _Forward(read)
    magic = raw.peek(4)
    if magic[:2] == b"\x1f\x8b":
        gz = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[arg-type]
        stream = _Forward(gz.read)
    elif magic == b"\x28\xb5\x2f\xfd":
        zs = zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
        stream = _Forward(zs.read)
    else:
        stream = raw
    catalogers = [OsReleaseReader(), *all_catalogers()]
    entries: list[list] = []
    whiteouts: list[str] = []
    opaque: list[str] = []
    members: list[list] = []  # [path, claimant, record, seq] of wanted regular members, tar order
    links: list[list] = []  # [path, claimant, target]
    regular: dict[str, list] = {}  # path -> [seq, record or None, occurrences]
    complete = True
    n = 0
    try:
        tar = tarfile.TarFile(fileobj=stream, mode="r")  # type: ignore[arg-type]
        while (m := tar.next()) is not None:
            tar.members.clear()
            n += 1
            if n > MAX_WALK_ENTRIES or stream.tell() > MAX_WALK_BYTES:
                return {"v": FACTS_VERSION, "complete": False, "why": "cap"}
            path = member_path(m.name)
            if not path:
                continue
            parent, _, base = path.rpartition("/")
            if base == WH_OPAQUE:
                opaque.append(parent)
                continue
            if base.startswith(WH_PREFIX):
                whiteouts.append(f"{parent}/{base[len(WH_PREFIX):]}" if parent else base[len(WH_PREFIX):])
                continue
            entries.append([path, 1 if m.isdir() else 0])
            claimant = next((c.name for c in catalogers if c.wants(path, m)), None) if (m.islnk() or m.isreg()) else None
            if m.islnk() and claimant:
                links.append([path, claimant, member_path(m.linkname)])
            elif m.isreg():
                seen = regular.setdefault(path, [n, None, 0])
                seen[0], seen[1] = n, None
                seen[2] += 1
                if claimant:
                    f = tar.extractfile(m)
                    assert f is not None
                    rec = _record(claimant, m, f)
                    seen[1] = rec
                    if rec is None:
                        complete = False
                    members.append([path, claimant, rec, n])
        end = stream.tell()
    except _Backward:
        return {"v": FACTS_VERSION, "complete": False, "why": "backward seek"}
    except Exception as e:  # tar, gzip, zstd errors: the walk from disk names them
        return {"v": FACTS_VERSION, "complete": False, "why": f"{type(e).__name__}: {e}"}
    resolved = []
    for path, claimant, target in links:
        t = regular.get(target)
        rec = t[1] if t and t[2] == 1 else None
        if rec is not None and claimant == GO and rec[0] == "raw":
            data = base64.b64decode(rec[1])
            rec = ["go", "not-elf"] if data[:4] != b"\x7fELF" else ["go", _go_json(golang.scan(io.BytesIO(data[4:]), already=data[:4]))]
        elif rec is not None and claimant != GO and rec[0] != "raw":
            rec = None
        if rec is None:
            complete = False
        resolved.append([path, claimant, target, rec, t[0] if t else 0])
    return {"v": FACTS_VERSION, "complete": complete, "entries_count": n, "bytes": end, "entries": entries,
            "whiteouts": whiteouts, "opaque": opaque, "members": members, "links": resolved}


# ------------------------------------------------------------------------------------------------ replay


class _Member:
    """The tar header fields a cataloger's read looks at (size; the mode was already checked by wants)."""

    def __init__(self, size: int):
        self.size = size


def replay(layer_facts: list[dict], catalogers: list, max_entries: int | None = None,
           max_bytes: int | None = None) -> bool:
    """Feed ``catalogers`` from the facts of an image's layers (bottom-first), as rootfs.walk would.

    Returns False (having fed nothing) when some layer's facts are incomplete or the image passes a cap: the
    caller then walks from disk, which raises the precise error."""
    if any(not f.get("complete") for f in layer_facts):
        return False
    by_name = {c.name: c for c in catalogers}
    shadow: set[str] = set()
    hidden: set[str] = set()
    opaque: set[str] = set()
    entries_left, bytes_left = max_entries or MAX_WALK_ENTRIES, max_bytes or MAX_WALK_BYTES
    visits: list[tuple[str, str, list]] = []

    def visible(path: str) -> bool:
        if path in shadow:
            return False
        return not any(p in hidden or p in opaque for p in parent_dirs(path))

    for facts in reversed(layer_facts):
        entries_left -= facts["entries_count"]
        bytes_left -= facts["bytes"]
        if entries_left < 0 or bytes_left < 0:
            return False
        add_shadow: set[str] = set()
        add_hidden: set[str] = set(facts["whiteouts"])
        add_shadow.update(facts["whiteouts"])
        add_opaque = set(facts["opaque"])
        for path, isdir in facts["entries"]:
            if visible(path):
                add_shadow.add(path)
                if not isdir:
                    add_hidden.add(path)
        for path, claimant, rec, _seq in facts["members"]:
            if visible(path):
                visits.append((path, claimant, rec))
        groups: dict[str, list] = {}
        for path, claimant, target, rec, seq in facts["links"]:
            if visible(path):
                groups.setdefault(target, [seq, {}])[1][path] = (claimant, rec)
        if groups:  # the walk reads such a layer twice (hardlinks' targets), and charges both passes
            entries_left -= facts["entries_count"]
            bytes_left -= facts["bytes"]
            if entries_left < 0 or bytes_left < 0:
                return False
        for _target, (_seq, paths) in sorted(groups.items(), key=lambda kv: kv[1][0]):
            first = sorted(paths)[0]
            visits.append((first, *paths[first]))
        if "" in add_opaque:  # a root opaque marker: nothing below this layer is visible
            break
        shadow |= add_shadow
        hidden |= add_hidden
        opaque |= add_opaque
    for path, claimant, rec in visits:
        c = by_name[claimant]
        if rec[0] == "go":
            value = _go_result(rec[1])
            if value == "not-elf" or value is None:
                continue
            if value == "old-format":
                c.unread_old_format.append("/" + path)
            else:
                c._found.append(("/" + path, value))
        else:
            data = base64.b64decode(rec[1])
            c.read(path, _Member(len(data)), io.BytesIO(data))
    return True


# ------------------------------------------------------------------------------------------------ the store


def default_dir() -> Path:
    return cache_dir() / "sbom-layers"


class LayerFactsStore:
    """Layer facts by blob digest: in memory, and (with ``directory``) one small zlib'd JSON file per digest.

    Only facts gathered from bytes whose digest was checked are put here (the blob writer's stream, after the
    hash matched; or a blob in the layout, whose name the layout checked on write)."""

    def __init__(self, directory: Path | None = None):
        self.dir = Path(directory) if directory else None
        self._mem: dict[str, dict] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.disk_reads: list[str] = []  # digests whose facts were read from a blob on disk (tests look)

    def _file(self, digest: str) -> Path:
        assert self.dir is not None
        return self.dir / f"{digest_hex(digest)}.v{FACTS_VERSION}.json.z"

    def get(self, digest: str) -> dict | None:
        if digest in self._mem:
            return self._mem[digest]
        if self.dir is None:
            return None
        try:
            facts = json.loads(zlib.decompress(self._file(digest).read_bytes()))
        except (OSError, ValueError, zlib.error):
            return None
        if not isinstance(facts, dict) or facts.get("v") != FACTS_VERSION:
            return None
        self._mem[digest] = facts
        return facts

    def put(self, digest: str, facts: dict) -> None:
        self._mem[digest] = facts
        if self.dir is not None and facts.get("complete"):
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(self._file(digest), zlib.compress(json.dumps(facts, separators=(",", ":")).encode(), 6))
            except OSError:
                pass  # a cache: the next build reads the blob once more

    def facts_for(self, digest: str, blob: Path) -> dict:
        """The facts of a layer in the layout: remembered, or read from its blob once."""
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        with lock:
            facts = self.get(digest)
            if facts is None:
                self.disk_reads.append(digest)
                with open(blob, "rb") as f:
                    facts = scan_layer(f.read)
                self.put(digest, facts)
            return facts

    def tap(self) -> StreamTap:
        return StreamTap()


_END = object()


class StreamTap:
    """Gathers a layer's facts on a thread from chunks handed over as the blob is written (bounded queue)."""

    def __init__(self, depth: int = 32):
        self._q: queue.Queue = queue.Queue(depth)
        self._facts: dict | None = None
        self._valid = True
        self._t = threading.Thread(target=self._run, name="medai-sbom-tap", daemon=True)
        self._t.start()

    def _pull(self, _n: int) -> bytes:
        chunk = self._q.get()
        if chunk is _END:
            self._ended = True
            return b""
        return chunk

    def _run(self) -> None:
        self._ended = False
        try:
            self._facts = scan_layer(self._pull)
        except BaseException as e:  # never let the download hang on the tap
            self._facts = {"v": FACTS_VERSION, "complete": False, "why": f"{type(e).__name__}: {e}"}
        while not self._ended:  # drain what follows the tar's end (padding) so the writer never blocks
            if self._q.get() is _END:
                break

    def __call__(self, chunk: bytes) -> None:
        self._q.put(bytes(chunk) if not isinstance(chunk, bytes) else chunk)

    def invalidate(self) -> None:
        self._valid = False

    def finish(self) -> dict | None:
        """Facts of every byte handed over (None when the stream restarted); waits for the scan to end."""
        self._q.put(_END)
        self._t.join()
        return self._facts if self._valid else None
