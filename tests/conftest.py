"""Shared fixtures. Session-scoped directories are shared by many tests: copy before changing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slr.data.synthetic import write_synthetic_dataset

#: The real asl-words clips of the shared data folder (see its README); tests that need them skip
#: without them. The checkout sits beside shared/ (here and in CI: shared/data/asl-words next to
#: the repository folder), so look there unless SLR_ASL_WORDS says otherwise.
ASL_WORDS = Path(os.environ.get("SLR_ASL_WORDS", Path(__file__).resolve().parents[2] / "shared" / "data" / "asl-words"))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic clips (5 glosses, 2 categories): `X` [T, 156], `X2048` [T, 64], labels.csv.

    Shared by the whole session: treat it as read-only (copy it with shutil.copytree to change it).
    """
    directory = tmp_path_factory.mktemp("synthetic") / "clips"
    write_synthetic_dataset(directory, 40, num_gloss=5, num_cat=2, feature_dim=64, min_frames=6, max_frames=20)
    return directory


@pytest.fixture(scope="session")
def asl_words_dir() -> Path:
    """The real asl-words clips (train/ and val/), or a skip where they are not present."""
    if not (ASL_WORDS / "train" / "labels.csv").is_file():
        pytest.skip(f"real clips not found at {ASL_WORDS} (set SLR_ASL_WORDS)")
    return ASL_WORDS


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine two OpenMP threads
    wait on each other for whole scheduler slices (a 1 s test became 40 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
