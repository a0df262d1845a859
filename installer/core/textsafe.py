"""Text from a bundle, a registry or a file name is printed and written only with its control characters escaped.

A file name on a hostile stick may hold a newline, a carriage return or a terminal escape: printed raw it
forges a line of a report or rewrites the operator's screen. `safe_text` turns each control character into
a visible escape (\\n, \\x1b, \\u2028...), so one name stays one line.
"""
from __future__ import annotations

import unicodedata


def safe_text(value: object) -> str:
    out = []
    for ch in str(value):
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"))
        else:
            out.append(ch)
    return "".join(out)


def not_checked_banner(console, message: str) -> None:
    """The same loud banner wherever signatures were not checked (verify, install, push, upgrade)."""
    bar = "!" * 78
    console.print(f"[bold red]{bar}\n!! {safe_text(message)}\n{bar}[/]", highlight=False, soft_wrap=True)
