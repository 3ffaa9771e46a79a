"""Data-parallel training: two processes launched by torchrun with gloo on the CPU stay in lock-step."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("_ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_training_keeps_replicas_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(WORKER), str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0)
    # the replicas moved away from the initialisation, and the logged losses are finite
    from vggtkit import VGGT
    from vggtkit.models.vggt.config import PRESETS as MODEL_PRESETS
    from vggtkit.train.config import TrainConfig

    torch.manual_seed(TrainConfig().run.seed)
    initial = VGGT(
        TrainConfig.from_dict({"model": {"preset": "test-tiny"}}).model.build_config()
    ).state_dict()
    assert "test-tiny" in MODEL_PRESETS
    assert any(not torch.equal(initial[k], rank0[k]) for k in rank0)
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor(float(r["objective"]))) for r in rows)
    assert (tmp_path / "checkpoints" / "latest").is_file()
