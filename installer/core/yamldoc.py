"""The user's YAML documents (manifest, inventory, waivers): reading them, and naming a field in an error."""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator

from installer.core.errors import MedaiError


def read_yaml(path: str | Path, error: type[MedaiError], what: str) -> Any:
    """Parse a YAML file; a missing, unreadable or malformed file raises ``error`` in one line naming it."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise error(f"{p}: {what} not found") from None
    except OSError as e:
        raise error(f"{p}: cannot read {what}: {e.strerror}") from None
    try:
        expanded = expanded_nodes(yaml.compose(text, Loader=yaml.SafeLoader))
        if expanded > MAX_EXPANDED_NODES:
            raise error(f"{p}: {what} expands to {expanded} YAML nodes through its aliases (at most "
                        f"{MAX_EXPANDED_NODES}): an alias bomb? refused")
        return yaml.safe_load(text)
    except RecursionError:
        raise error(f"{p}: {what}: aliases nest too deep or refer to themselves: refused") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise error(f"{p}:{where}: not valid YAML: {getattr(e, 'problem', None) or str(e).splitlines()[0]}") from None


MAX_EXPANDED_NODES = 1_000_000  # a real inventory or manifest has thousands; "billion laughs" has 10**9


def expanded_nodes(node: yaml.Node | None) -> int:
    """How many nodes the document has once every alias is expanded (as json.dumps or Ansible would), counted
    without expanding anything: each node's size is computed once. An alias to an enclosing node (a cycle)
    raises RecursionError."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise RecursionError("alias cycle")
        active.add(key)
        if isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in n.value)
        else:
            total = 1
        active.discard(key)
        sizes[key] = total
        return total

    return 0 if node is None else size(node)


def field_path(loc: Iterable[Any], skip: Iterable[str] = ()) -> str:
    """pydantic's error location as the user writes it: ('spec', 'images', 2, 'ref') -> 'spec.images[2].ref'.

    ``skip``: location parts that are pydantic's own union-member tags, not fields of the document."""
    skipped = set(skip)
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in skipped:
            out += f".{part}" if out else str(part)
    return out


def lower_name(pattern: re.Pattern[str]) -> Any:
    """A str field type that must match ``pattern`` (lower-case names), with the one message every document uses."""
    def check(v: str) -> str:
        if not pattern.match(v):
            raise ValueError(f"{v!r} must be lower-case letters, digits, '.', '_' or '-'")
        return v

    return Annotated[str, AfterValidator(check)]
