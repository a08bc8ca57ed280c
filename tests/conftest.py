import os

# The suite runs tiny models, where MLX's bundled reference BLAS is faster than MKL or OpenBLAS (their
# per-call overhead dominates; measured in README "Tests"). MLX_SPECDEC_BLAS=mkl|openblas|auto picks
# another; the suite passes with each. Set before the package chooses one at import.
os.environ.setdefault("MLX_SPECDEC_BLAS", "bundled")

import mlx_specdec_plugin  # noqa: E402,F401  first: the CPU BLAS is chosen before mlx.core binds one
import mlx.core as mx  # noqa: E402
import pytest  # noqa: E402


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
