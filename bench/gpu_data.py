"""The GPU benchmark's vectors, generated on the device with PyTorch.

The recipe is `datasets.py`'s Gaussian mixture (1000 clusters, Dirichlet(2) weights, centres
~ N(0, 1/(2d)), spread 0.8 x LogNormal(0, 0.3) over a random 16-dimensional subspace per
cluster, isotropic noise 0.1): the mixture's parameters come from the same numpy generator,
and the rows are drawn on the device in chunks. The rows are not bit-identical to
`datasets.py`'s (another random stream), but 1M x 1536 takes seconds instead of the minutes
single-threaded numpy needs, which a 15-minute device lease cannot spare.

    python bench/gpu_data.py gmm-1m-768 /tmp/gpu/gmm-1m-768.npy [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

CLUSTERS = 1000
# Rows per chunk: each row gathers its cluster's sub × d basis, so a chunk holds at most 1 GiB
# of them.
GATHER_BYTES = 1 << 30


def shape_of(name: str) -> tuple[int, int]:
    """`gmm-1m-768` → (1_000_000, 768)."""
    _, n, d = name.split("-")
    return int(n.replace("k", "000").replace("m", "000000")), int(d)


def generate(name: str, path: Path, device: str, seed: int = 0) -> float:
    """Writes the rows of `name` to `path` (float32 .npy); returns the seconds it took."""
    start = time.perf_counter()
    n, d = shape_of(name)
    dev = torch.device(device)
    model = np.random.default_rng([seed, d, CLUSTERS])
    weights = torch.from_numpy(model.dirichlet(np.full(CLUSTERS, 2.0))).to(dev)
    centres = torch.from_numpy(model.normal(0.0, np.sqrt(1.0 / (2 * d)), size=(CLUSTERS, d))).float().to(dev)
    spread = torch.from_numpy(0.8 * model.lognormal(0.0, 0.3, size=CLUSTERS)).float().to(dev)
    sub = 16 if d >= 16 else d
    # One orthonormal sub × d basis per cluster (QR of a Gaussian d × sub matrix).
    gauss = torch.from_numpy(model.normal(size=(CLUSTERS, d, sub))).float().to(dev)
    bases = torch.linalg.qr(gauss).Q.transpose(1, 2).contiguous()  # (clusters, sub, d)
    gen = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + d)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
    chunk = max(1, GATHER_BYTES // (sub * d * 4))
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        c = torch.multinomial(weights, m, replacement=True, generator=gen)
        z = torch.randn(m, sub, device=dev, generator=gen) * (spread[c] / sub**0.5)[:, None]
        x = centres[c] + torch.bmm(z[:, None, :], bases[c])[:, 0, :]
        x += torch.randn(m, d, device=dev, generator=gen) * (0.1 / d**0.5)
        out[s : s + m] = x.cpu().numpy()
    out.flush()
    del out
    tmp.rename(path)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="gmm-<rows>-<dim>, e.g. gmm-1m-768")
    ap.add_argument("path", type=Path)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    seconds = generate(args.name, args.path, args.device)
    print(f"{args.name}: {args.path} in {seconds:.1f} s on {args.device}")


if __name__ == "__main__":
    main()
