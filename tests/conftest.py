"""Shared test set-up."""
import sys

import pytest


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, saying why, where torch sees no CUDA GPU (CPU-only CI, laptops)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    reason = f"needs a CUDA GPU; torch {torch.__version__} sees none here (run on a GPU machine: make gpu-check)"
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _forget_finished_launches():
    """The dashboard's launch list is process-wide: a launch that failed in one test must not show in the next."""
    yield
    module = sys.modules.get("ui.services.launches")
    if module is not None:
        module.launches().forget_finished()
