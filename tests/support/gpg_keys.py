"""Throwaway OpenPGP keys for tests: a primary key and an encryption subkey, exported armoured. The gpg agent a
home starts is stopped before returning, so no test leaves one running."""
from __future__ import annotations

import subprocess
from pathlib import Path


def operator_key(home: Path, name: str, out: Path, *, algos: tuple[str, str] = ("ed25519", "cv25519"),
                 expires: str = "never", encryption_expires: str = "never") -> Path:
    """``name <name@hospital.test>``'s public key written to ``out``; ``home`` is made (0700) when absent."""
    home.mkdir(mode=0o700, exist_ok=True)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    uid = f"{name} <{name}@hospital.test>"
    try:
        subprocess.run(gpg + ["--quick-gen-key", uid, algos[0], "sign,cert", expires], check=True, capture_output=True)
        listing = subprocess.run(gpg + ["--with-colons", "--list-keys", uid], check=True, capture_output=True, text=True)
        fpr = next(ln.split(":")[9] for ln in listing.stdout.splitlines() if ln.startswith("fpr:"))
        subprocess.run(gpg + ["--quick-add-key", fpr, algos[1], "encr", encryption_expires], check=True, capture_output=True)
        out.write_bytes(subprocess.run(gpg + ["--armor", "--export", fpr], check=True, capture_output=True).stdout)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    return out
