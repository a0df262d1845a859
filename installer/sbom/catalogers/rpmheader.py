"""RPM header blobs as stored in rpmdb.sqlite's Packages table (no lead, no header magic).

    int32 il (index entries), int32 dl (data bytes),
    il x {int32 tag, int32 type, int32 offset, int32 count}, then dl bytes of data   (all big-endian)
"""
from __future__ import annotations

import struct

NAME, VERSION, RELEASE, EPOCH, SUMMARY, VENDOR, LICENSE, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1004, 1011, 1014, 1022, 1044
_STRING, _INT32, _STRING_ARRAY, _I18NSTRING = 6, 4, 8, 9
_MAX_ENTRIES = 1 << 16


class HeaderError(ValueError):
    pass


def parse(blob: bytes, tags: set[int]) -> dict[int, str | int]:
    """The wanted tags of one header: strings as str (first of an array), INT32 as int."""
    if len(blob) < 8:
        raise HeaderError("header shorter than its 8-byte preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    start = 8 + 16 * il
    if il > _MAX_ENTRIES or start + dl > len(blob):
        raise HeaderError(f"header claims {il} entries and {dl} data bytes, blob has {len(blob)}")
    data = blob[start:start + dl]
    out: dict[int, str | int] = {}
    for i in range(il):
        tag, typ, off, count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if tag not in tags or off < 0 or off >= dl:
            continue
        if typ in (_STRING, _STRING_ARRAY, _I18NSTRING):
            end = data.find(b"\0", off)
            if end < 0:
                raise HeaderError(f"tag {tag}: string runs past the data store")
            out[tag] = data[off:end].decode("utf-8", errors="replace")
        elif typ == _INT32 and count >= 1 and off + 4 <= dl:
            out[tag] = struct.unpack_from(">I", data, off)[0]
    return out
