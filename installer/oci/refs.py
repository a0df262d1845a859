"""Image references: the docker reference grammar, normalisation, and finding references inside free text.

Grammar (distribution/reference): ``[host[:port]/]path-component(/path-component)*[:tag][@sha256:hex]``.
Normalisation is Docker's: ``nginx:1.27`` -> ``docker.io/library/nginx:1.27``; ``tag@digest`` keeps both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from installer.core.errors import RegistryError
from installer.oci.registry import parse_ref

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)"
)
REFERENCE = re.compile(
    rf"^(?:(?P<host>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# What separates words in args, env values, config files (YAML, JSON, INI, shell) and CLI flags (--x=REF).
_SEPARATORS = re.compile(r"""[\s"'`,;=(){}\[\]<>|]+""")


@dataclass(frozen=True)
class ParsedRef:
    raw: str
    name: str  # normalised, e.g. docker.io/library/nginx:1.27
    tagged: bool  # an explicit tag or digest was written
    latest: bool  # the tag written is 'latest' (and no digest pins it)


def parse_image(raw: str) -> ParsedRef:
    """Parse and normalise one reference. Raises ValueError naming what is wrong."""
    text = raw.strip()
    m = REFERENCE.match(text)
    if not m:
        raise ValueError(f"{raw!r} is not an image reference")
    host = m.group("host")
    if host and not ("." in host or ":" in host or host == "localhost" or host.startswith("[")):
        # 'org/app' : the first component is a path, not a host (docker's rule); re-check it as a path
        if not re.fullmatch(_COMPONENT, host):
            raise ValueError(f"{raw!r} is not an image reference (upper case in the repository)")
    try:
        ref = parse_ref(text)
    except RegistryError as e:
        raise ValueError(str(e)) from None
    tag, digest = m.group("tag"), m.group("digest")
    return ParsedRef(raw=text, name=ref.name, tagged=bool(tag or digest), latest=(tag == "latest" and not digest))


def normalize_ref(raw: str) -> str:
    """Docker's reading of a reference written out in full; an untagged one gets ':latest'. Raises ValueError."""
    return parse_image(raw).name


def refs_in_text(text: str) -> list[ParsedRef]:
    """References inside a free string (an arg, an env value, a ConfigMap file, a CR field).

    A word counts when it parses with the grammar AND is unmistakably an image: it names a tag or a digest, and a
    repository path with at least one '/' (``org/app:1``, ``quay.io/x/y:2``) or a digest. A bare ``word:1`` is
    far more often ``host:port`` or ``key:value`` than an image, so free text never yields one; the fields that
    hold exactly one image (``containers[].image``, any ``image`` key) are read by the caller without this rule.
    """
    found: list[ParsedRef] = []
    for word in _SEPARATORS.split(text):
        word = word.strip(".:")
        if "/" not in word and "@" not in word:
            continue
        if "://" in word or word.startswith("/") or "{{" in word:
            continue
        m = REFERENCE.match(word)
        if not m or not (m.group("tag") or m.group("digest")):
            continue
        if "/" not in m.group("path") and not m.group("host") and not m.group("digest"):
            continue
        try:
            found.append(parse_image(word))
        except ValueError:
            continue
    return found
