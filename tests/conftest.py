"""Shared fixtures: paths to the real face data, fresh databases, small subsets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Two cores shared with other processes: one intra-op thread keeps tests steady.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
LFW_DEV = Path(os.environ.get("ASPL_LFW_DEV", REPO.parent / "shared" / "data" / "lfw-dev"))


@pytest.fixture(scope="session")
def lfw_dev() -> Path:
    """The real LFW slice from ../shared/data (see its README)."""
    if not LFW_DEV.is_dir():
        pytest.fail(f"real face data not found at {LFW_DEV}; set ASPL_LFW_DEV")
    return LFW_DEV
