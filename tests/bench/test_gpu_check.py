"""The GPU check command, run on the CPU with a tiny model (the GPU run itself needs a CUDA machine)."""

from __future__ import annotations

import json

import torch

from vggtkit.bench import gpu_check


def test_quick_check_on_the_cpu_writes_every_table(tmp_path, capsys):
    code = gpu_check.main(["--device", "cpu", "--quick", "--skip-tests", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = {row["step"] for row in data["rows"]}
    assert {"golden errors", "float32 lean vs reference plan", "bfloat16 lean plan", "heads layout"} <= steps
    golden = [r for r in data["rows"] if r["step"] == "golden errors" and "float32" in r["setting"]]
    assert golden and all(r["within_tolerance"] for r in golden)
    assert (tmp_path / "gpu_check.csv").read_text().startswith("step,")
    assert "### bfloat16 lean plan" in capsys.readouterr().out


def test_without_cuda_the_check_says_how_to_run_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
