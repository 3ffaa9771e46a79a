"""Random initialisation: real draws on real devices, nothing (and no heavy imports) on the meta device."""

from __future__ import annotations

import subprocess
import sys

import torch

from vggtkit.layers.init import normal_, normal_parameter


def test_draws_have_the_requested_spread_and_truncation():
    torch.manual_seed(0)
    plain = normal_parameter(200_000, std=0.02).detach()
    assert abs(float(plain.std()) - 0.02) < 5e-4 and float(plain.abs().max()) > 0.04
    wide = normal_(torch.empty(200_000), std=1.5)
    cut = normal_(torch.empty(200_000), std=1.5, truncated=True)
    assert float(wide.abs().max()) > 2.5 and float(cut.abs().max()) <= 2.0  # cut at +-2, as trunc_normal_


def test_meta_tensors_stay_placeholders():
    meta = torch.empty(4, 4, device="meta")
    assert normal_(meta, std=1.0) is meta and normal_parameter(2, 3).is_meta is False
    with torch.device("meta"):
        assert normal_parameter(2, 3).is_meta


def test_building_vggt_on_meta_imports_no_compiler_stack():
    # A fresh interpreter: other tests may already have imported torch._dynamo in this one.
    code = (
        "import sys, torch\n"
        "from vggtkit import VGGT, VGGTConfig\n"
        "with torch.device('meta'):\n"
        "    VGGT(VGGTConfig())\n"
        "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
