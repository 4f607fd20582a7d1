"""Shared test set-up."""
import sys

import pytest


@pytest.fixture(autouse=True)
def _forget_finished_launches():
    """The dashboard's launch list is process-wide: a launch that failed in one test must not show in the next."""
    yield
    module = sys.modules.get("ui.services.launches")
    if module is not None:
        module.launches().forget_finished()
