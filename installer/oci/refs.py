"""Image references: the docker reference grammar, normalisation, and finding references inside free text.

Grammar (distribution/reference): ``[host[:port]/]path-component(/path-component)*[:tag][@sha256:hex]``.
Normalisation is Docker's: ``nginx:1.27`` -> ``docker.io/library/nginx:1.27``; ``tag@digest`` keeps both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from installer.core.errors import RegistryError

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


DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


@dataclass(frozen=True)
class ImageRef:
    """A parsed, normalised image reference: the one reference type.

    ``registry`` is the name users write (``docker.io``, ``127.0.0.1:5000``); ``api_host`` is where the API lives
    (``registry-1.docker.io`` for Docker Hub). ``name`` is the full normalised reference, e.g.
    ``docker.io/library/nginx:1.27`` or ``127.0.0.1:5000/demo/app:1.0@sha256:…``: it is what the OCI layout
    records as ``org.opencontainers.image.ref.name``. ``raw`` is the text as written and ``explicit`` whether it
    named a tag or a digest (neither takes part in equality).
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    raw: str = field(default="", compare=False)
    explicit: bool = field(default=True, compare=False)

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def repo_name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def name(self) -> str:
        out = self.repo_name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def path(self) -> str:
        """The name without its registry: ``repository[:tag][@digest]``."""
        return self.name[len(self.registry) + 1:]

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def tagged(self) -> bool:
        """An explicit tag or digest was written."""
        return self.explicit

    @property
    def latest(self) -> bool:
        """The tag written is 'latest' and no digest pins it."""
        return self.explicit and self.tag == "latest" and not self.digest

    def with_tag(self, tag: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        return self.name


def parse_ref(raw: str) -> ImageRef:
    """Parse ``[host[:port]/]path[:tag][@sha256:hex]`` the way docker does (docker.io and library/ implied).

    A reference with neither tag nor digest gets ``latest``. Raises RegistryError naming what is wrong.
    """
    text = raw.strip()
    m = REFERENCE.match(text)
    if not m:
        raise RegistryError(f"{raw!r} is not an image reference")
    host, tag, digest = m.group("host"), m.group("tag"), m.group("digest")
    if host and not ("." in host or ":" in host or host == "localhost" or host.startswith("[")):
        # 'org/app': the first component is a path, not a host (docker's rule); re-check it as a path
        if not re.fullmatch(_COMPONENT, host):
            raise RegistryError(f"{raw!r} is not an image reference (upper case in the repository)")
        registry, repository = DOCKER_HUB, f"{host}/{m.group('path')}"
    elif host:
        registry, repository = host, m.group("path")
    else:
        registry, repository = DOCKER_HUB, m.group("path")
    if registry in ("index.docker.io", DOCKER_HUB_API):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return ImageRef(registry, repository, tag or (None if digest else "latest"), digest, raw=text,
                    explicit=bool(tag or digest))


def normalize_ref(raw: str) -> str:
    """Docker's reading of a reference written out in full; an untagged one gets ':latest'. Raises RegistryError."""
    return parse_ref(raw).name


def refs_in_text(text: str) -> list[ImageRef]:
    """References inside a free string (an arg, an env value, a ConfigMap file, a CR field).

    A word counts when it parses with the grammar AND is unmistakably an image: it names a tag or a digest, and a
    repository path with at least one '/' (``org/app:1``, ``quay.io/x/y:2``) or a digest. A bare ``word:1`` is
    far more often ``host:port`` or ``key:value`` than an image, so free text never yields one; the fields that
    hold exactly one image (``containers[].image``, any ``image`` key) are read by the caller without this rule.
    """
    found: list[ImageRef] = []
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
            found.append(parse_ref(word))
        except RegistryError:
            continue
    return found
