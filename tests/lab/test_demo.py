"""`medai lab demo`: the missing-step rule (cheap, always) and the whole flow (e2e, opt-in: minutes of CPU and
Debian's archive for the OS packages, i.e. the connected side)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from installer.lab.demo import DemoRun, command_available

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_command_is_reported_and_its_dependents_skipped_never_faked():
    ran: list[str] = []
    demo = DemoRun(Console(file=open(os.devnull, "w")))
    assert command_available("lab", "status") and not command_available("lab", "no-such-command")
    demo.step("first", lambda: ran.append("first") or "ok")
    demo.step("missing", lambda: ran.append("missing") or "", command=("lab", "no-such-command"))
    demo.step("after", lambda: ran.append("after") or "", needs=["first", "missing"])
    assert ran == ["first"]
    assert [(s.name, s.status) for s in demo.steps] == [("first", "done"), ("missing", "not available"),
                                                        ("after", "skipped")]
    assert "needs missing" in demo.steps[2].detail and not demo.ok


@pytest.mark.e2e
@pytest.mark.lab
@pytest.mark.skipif(os.environ.get("MEDAI_SKIP_LAB_DEMO") == "1",
                    reason="MEDAI_SKIP_LAB_DEMO=1: the README's main job (minutes; OS packages from Debian's archive, "
                           "the connected side) was not run")
def test_demo_runs_every_step(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path / ".medai"), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "installer.cli.main", "lab", "demo", "--down"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for step in ("signing key", "bundle build", "lab up", "install", "verify"):
        assert any(line.split("│")[0].strip() == step and "done" in line for line in out.splitlines()), step
    assert (tmp_path / ".medai" / "lab" / "demo" / "bundle" / "index.json.sig").is_file()
    assert not (tmp_path / ".medai" / "lab" / "lab.json").exists()  # --down removed the lab


def test_the_node_image_is_made_before_anything_cuts_images_from_it_and_a_failure_says_what_to_run(tmp_path,
                                                                                                   monkeypatch):
    """On an empty podman store the image step runs first; when it fails, nothing that needs it runs, and the
    last line names the step, its cause and the retry and clean-up commands."""
    from installer.core.errors import LabError
    from installer.lab.demo import run_demo

    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / ".medai"))
    calls: list[str] = []

    def no_image() -> str:
        calls.append("image")
        raise LabError("mmdebstrap (building the lab node root filesystem): E: cannot reach the archive")

    def lab_up(*_a):
        calls.append("lab up")
        raise AssertionError("lab up must not run without the node image")

    run = run_demo(Console(file=open(os.devnull, "w")), lab_up=lab_up, build_image=no_image)
    assert calls == ["image"]
    assert [s.name for s in run.steps][:3] == ["lab image", "signing key", "bundle build"]
    status = {s.name: s.status for s in run.steps}
    assert status["lab image"] == "failed" and status["bundle build"] == "skipped" and status["lab up"] == "skipped"
    line = run.failure_line()
    assert "'lab image'" in line and "cannot reach the archive" in line
    assert "medai lab demo" in line and "medai lab down" in line
