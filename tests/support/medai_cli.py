"""Running medai as the operator does (a subprocess with its own MEDAI_HOME), and reading its run records."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def medai_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "installer.cli.main", *args]


# An operator who exported the signing-key password on the control host: install must never carry it anywhere.
OPERATOR_KEY_PASSWORD = "operator-exported-key-password-0042"
SITE_KEY: dict[str, Path] = {}


def medai_env(home: Path) -> dict:
    env = dict(os.environ)
    env.update({"MEDAI_HOME": str(home), "COLUMNS": "300", "MEDAI_KEY_PASSWORD": OPERATOR_KEY_PASSWORD})
    return env


def sign(bundle: Path, tmp: Path) -> Path:
    from installer.trust.keys import generate_keypair, load_private_key
    from installer.trust.signing import sign_index

    if "pub" not in SITE_KEY:
        SITE_KEY["key"], SITE_KEY["pub"] = generate_keypair(tmp / "site", b"lab-site-key-pw")
    sign_index(bundle, (bundle / "index.json").read_bytes(), load_private_key(SITE_KEY["key"], b"lab-site-key-pw"))
    return SITE_KEY["pub"]


def medai(home: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(medai_argv(*args), capture_output=True, text=True, cwd=ROOT, env=medai_env(home), timeout=timeout)


def runs(home: Path) -> list[dict]:
    d = home / "runs"
    if not d.exists():
        return []
    return [json.loads((r / "run.json").read_text()) for r in sorted(d.iterdir()) if (r / "run.json").exists()]
