"""The weight check's result in `medai verify`'s evidence: the real checker writes its JSON, evidence.py adds
one small row per host and model, and a refused model blocks the gate."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from installer.inference.evidence import add_to_report, weights_to_check

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "installer/trust/model_check.py"


def _index(files: dict[str, bytes]) -> dict:
    return {"artifacts": [{"kind": "model", "name": "m", "path": "models/m", "paths": [f"models/m/{p}" for p in files]},
                          {"kind": "file", "name": "k3s", "path": "files/k3s"}],
            "files": [{"path": f"models/m/{p}", "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()]
            + [{"path": "files/k3s", "size": 1, "sha256": "0" * 64}]}


def _run_checker(tmp: Path, host: str, weights: str, model_dir: Path) -> None:
    (tmp / "w.json").write_text(weights)
    out = tmp / "hosts" / host
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(CHECKER), f"--index={tmp / 'w.json'}", "--model=m", f"--path={model_dir}",
                    f"--json-out={out / 'model-weights-m.json'}"], capture_output=True)


def test_rows_and_gate(tmp_path):
    files = {"config.json": b"{}", "model-00001-of-00001.safetensors": b"\0" * 4096}
    weights = weights_to_check(_index(files))
    assert list(weights) == ["m"] and "files/k3s" not in weights["m"]
    good, bad = tmp_path / "good", tmp_path / "bad"
    for d in (good, bad):
        d.mkdir()
        for p, b in files.items():
            (d / p).write_bytes(b)
    (bad / "model-00001-of-00001.safetensors").write_bytes(b"\1" + b"\0" * 4095)
    _run_checker(tmp_path, "gpu-1", weights["m"], good)
    _run_checker(tmp_path, "gpu-2", weights["m"], bad)
    report = {"gate": {"passed": True, "blocking": []}}
    add_to_report(report, tmp_path / "hosts")
    rows = {r["host"]: r for r in report["modelWeights"]}
    assert rows["gpu-1"]["result"] == "passed" and rows["gpu-1"]["bytesVerified"] == 4098
    assert rows["gpu-2"]["result"] == "refused"
    assert rows["gpu-2"]["problems"] == ["altered: model-00001-of-00001.safetensors: sha256 differs from the signed index"]
    assert report["gate"]["passed"] is False
    (b,) = report["gate"]["blocking"]
    assert b["host"] == "gpu-2" and b["rule"] == "model-weights" and "model-00001-of-00001.safetensors" in b["title"]
    assert len(json.dumps(report["modelWeights"])) < 1000  # small
