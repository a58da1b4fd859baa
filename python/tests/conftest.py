import numpy as np
import pytest

import vecfusion


def clustered(n: int, dim: int, clusters: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, size=n)
    return (centres[labels] + 0.4 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture
def session() -> vecfusion.Session:
    return vecfusion.connect()


@pytest.fixture
def vectors() -> np.ndarray:
    return clustered(5000, 32)


@pytest.fixture
def items(session, vectors, tmp_path):
    labels = np.where(np.arange(len(vectors)) % 10 == 0, "spam", "ok")
    return session.create_dataset("items", str(tmp_path / "items"), vectors, columns={"label": labels})
