"""`medai`: the one command the operator types. Each sub-command lives in its own module (installer/cli/app.py).

A no-change `medai bundle build` is answered before typer, httpx or pydantic are imported: at this size of a
rebuild their imports are most of its time (installer/collect/uptodate.py).
"""
from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:3] == ["bundle", "build"]:
        from installer.collect import uptodate

        if uptodate.try_up_to_date(sys.argv[3:]):
            sys.exit(0)
    from installer.cli.app import run

    run()


if __name__ == "__main__":
    main()
