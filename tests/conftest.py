import os

import mlx_specdec_plugin  # noqa: F401  first: the fast CPU BLAS is chosen before mlx.core binds one
import mlx.core as mx
import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MLX_SPECDEC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="real weights / network: set MLX_SPECDEC_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cpu_float32_seed():
    mx.random.seed(0)
    yield
