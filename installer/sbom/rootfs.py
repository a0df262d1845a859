"""Walk an image's final filesystem straight from its layer blobs, never extracting to disk.

Layers are streamed top (last) to bottom, so only files visible in the merged filesystem reach the
catalogers: a path already seen in an upper layer shadows it, and an upper whiteout (``.wh.NAME``),
opaque marker (``.wh..wh..opq``) or non-directory hides everything below it. Memory holds the set of
paths seen so far, never file contents; catalogers read (a bounded prefix of) the members they want.
"""
from __future__ import annotations

import gzip
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import zstandard

from installer.core.errors import TrustError

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
# A decompression bomb or a tar of millions of empty entries must not cost unbounded CPU or memory: the walk of
# one image stops, naming the layer, past these (far above any real image: a full distro is ~100k entries, GBs).
MAX_WALK_ENTRIES = 2_000_000
MAX_WALK_BYTES = 64 * 1024 ** 3


class _Budget:
    """Uncompressed bytes and tar entries left for one image's walk."""

    def __init__(self, what: str, entries: int, nbytes: int):
        self.what, self.entries, self.nbytes = what, entries, nbytes
        self.max_entries, self.max_bytes = entries, nbytes
        self.digest = ""

    def entry(self) -> None:
        self.entries -= 1
        if self.entries < 0:
            raise TrustError(f"{self.what}: layer {self.digest}: more than {self.max_entries} tar entries in the image: refused")

    def spend(self, n: int) -> None:
        self.nbytes -= n
        if self.nbytes < 0:
            raise TrustError(f"{self.what}: layer {self.digest}: more than {self.max_bytes} uncompressed bytes in the image "
                             "(a decompression bomb?): refused")


class _Counted:
    """A read-only stream that charges every byte read to the budget."""

    def __init__(self, stream: IO[bytes], budget: _Budget):
        self._s, self._b = stream, budget

    def read(self, n: int = -1) -> bytes:
        data = self._s.read(n)
        self._b.spend(len(data))
        return data

# (path in image, member, open stream of its content) -> None
Visitor = Callable[[str, tarfile.TarInfo, IO[bytes]], None]
Wants = Callable[[str, tarfile.TarInfo], bool]


def member_path(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def parent_dirs(path: str) -> Iterable[str]:
    i = path.find("/")
    while i != -1:
        yield path[:i]
        i = path.find("/", i + 1)


@contextmanager
def open_layer(path: Path) -> Iterator[IO[bytes]]:
    """A byte stream of the uncompressed tar, whatever the compression (sniffed, not trusted from mediaType)."""
    with open(path, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz  # type: ignore[misc]
        elif magic == b"\x28\xb5\x2f\xfd":
            with zstandard.ZstdDecompressor().stream_reader(raw, closefd=False) as zs:
                yield zs  # type: ignore[misc]
        else:
            yield raw


def walk(layer_paths: list[tuple[str, Path]], wants: Wants, visit: Visitor, what: str,
         max_entries: int | None = None, max_bytes: int | None = None) -> None:
    """Call ``visit`` for every regular file of the merged filesystem that ``wants`` selects.

    ``layer_paths`` is bottom-first (manifest order): (digest, blob path). The whole walk reads at most
    ``max_bytes`` uncompressed bytes and ``max_entries`` tar entries (TrustError naming the layer past them).
    """
    budget = _Budget(what, max_entries or MAX_WALK_ENTRIES, max_bytes or MAX_WALK_BYTES)
    shadow: set[str] = set()  # every path some upper layer defines
    hidden: set[str] = set()  # subtrees hidden from lower layers (whiteouts, upper non-directories)
    opaque: set[str] = set()  # directories whose lower contents are hidden

    def visible(path: str) -> bool:
        if path in shadow:
            return False
        return not any(p in hidden or p in opaque for p in parent_dirs(path))

    for digest, blob in reversed(layer_paths):
        add_shadow: set[str] = set()
        add_hidden: set[str] = set()
        add_opaque: set[str] = set()
        links: dict[str, str] = {}  # wanted hardlink path -> target path in this layer
        root_opaque = False
        if not blob.is_file():
            raise TrustError(f"{what}: layer {digest} missing from the OCI layout")
        budget.digest = digest
        try:
            with open_layer(blob) as stream, tarfile.open(fileobj=_Counted(stream, budget), mode="r|") as tar:
                while (m := tar.next()) is not None:
                    tar.members.clear()  # stream mode would otherwise keep every TarInfo
                    budget.entry()
                    path = member_path(m.name)
                    if not path:
                        continue
                    parent, _, base = path.rpartition("/")
                    if base == WH_OPAQUE:
                        if not parent:
                            root_opaque = True
                        add_opaque.add(parent)
                        continue
                    if base.startswith(WH_PREFIX):
                        target = f"{parent}/{base[len(WH_PREFIX):]}" if parent else base[len(WH_PREFIX):]
                        add_hidden.add(target)
                        add_shadow.add(target)
                        continue
                    if not visible(path):
                        continue
                    add_shadow.add(path)
                    if not m.isdir():
                        add_hidden.add(path)
                    if m.islnk() and wants(path, m):
                        links[path] = member_path(m.linkname)
                    elif m.isreg() and wants(path, m):
                        f = tar.extractfile(m)
                        assert f is not None
                        visit(path, m, f)
            if links:
                _resolve_hardlinks(blob, links, visit, budget)
        except (tarfile.TarError, zlib.error, OSError, EOFError) as e:
            raise TrustError(f"{what}: layer {digest} is not a readable tar stream: {e}") from None
        except Exception as e:  # zstandard raises its own ZstdError
            if type(e).__name__ == "ZstdError":
                raise TrustError(f"{what}: layer {digest} is not a readable zstd stream: {e}") from None
            raise
        if root_opaque:  # nothing below this layer is visible
            return
        shadow |= add_shadow
        hidden |= add_hidden
        opaque |= add_opaque


def _resolve_hardlinks(blob: Path, links: dict[str, str], visit: Visitor, budget: _Budget) -> None:
    """Second pass over one layer: a wanted hardlink gets the content of its target member."""
    by_target: dict[str, list[str]] = {}
    for path, target in links.items():
        by_target.setdefault(target, []).append(path)
    with open_layer(blob) as stream, tarfile.open(fileobj=_Counted(stream, budget), mode="r|") as tar:
        while (m := tar.next()) is not None:
            tar.members.clear()
            budget.entry()
            paths = by_target.get(member_path(m.name))
            if paths and m.isreg():
                # one read per target; further links to it get the first's view (rare: a binary linked twice)
                f = tar.extractfile(m)
                assert f is not None
                visit(sorted(paths)[0], m, f)
