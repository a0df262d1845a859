"""Certificates for the certs and status tests, made with openssl (`openssl ca -selfsign`, which takes explicit
start and end dates on OpenSSL 3.0), so the reader under test never made what it reads."""
from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path

_CONFIG = """[ca]
default_ca = d
[d]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = p
copy_extensions = copy
[p]
commonName = supplied
"""


def _stamp(offset: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + offset).strftime("%Y%m%d%H%M%SZ")


def openssl_cert(out: Path, cn: str, *, start: dt.timedelta = dt.timedelta(days=-1),
                 end: dt.timedelta = dt.timedelta(days=365), sans: tuple[str, ...] = ()) -> Path:
    """A self-signed EC certificate valid from now+start to now+end, written to ``out`` (PEM)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        w = Path(d)
        (w / "index.txt").write_text("")
        (w / "serial").write_text("1000\n")
        (w / "ca.cnf").write_text(_CONFIG.format(dir=w))
        run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, cwd=w)  # noqa: E731
        run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.pem")
        req = ["openssl", "req", "-new", "-key", "k.pem", "-subj", f"/CN={cn}", "-out", "r.csr"]
        if sans:
            req += ["-addext", "subjectAltName=" + ",".join(f"DNS:{s}" for s in sans)]
        run(*req)
        run("openssl", "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "k.pem", "-in", "r.csr",
            "-startdate", _stamp(start), "-enddate", _stamp(end), "-notext", "-out", str(out.resolve()))
    return out
