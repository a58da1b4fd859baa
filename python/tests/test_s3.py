"""Datasets on an S3-compatible server from Python, configured by the AWS_* environment as the
AWS tools are: SeaweedFS (scripts/fetch-s3-server.sh) started on 127.0.0.1 for the test."""

import os
import pathlib
import random
import socket
import subprocess
import time

import numpy as np
import pytest

import vecfusion
from conftest import clustered

KEY, SECRET, BUCKET = "testkey", "testsecret", "testbucket"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _base_port() -> int:
    """A base whose five HTTP ports (base + 1..5) and their gRPC twins (+ 10000) are free."""
    for _ in range(200):
        base = random.randrange(20_000, 45_000)
        if all(_free(p) for i in range(1, 6) for p in (base + i, base + i + 10_000)):
            return base
    raise RuntimeError("no free ports for the S3 server")


@pytest.fixture
def s3_endpoint(tmp_path, monkeypatch):
    weed = os.environ.get("VECFUSION_S3_SERVER") or str(
        pathlib.Path.home() / ".cache/vecfusion/s3-server/venv/bin/weed"
    )
    assert os.path.exists(weed), f"{weed} is missing: run scripts/fetch-s3-server.sh"
    base = _base_port()
    args = [weed, "mini", f"-dir={tmp_path / 'weed'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", *(f"-{name}.port={base + i}" for i, name in
                                         enumerate(["master", "volume", "filer", "s3", "admin"], 1)),
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-bucket={BUCKET}"]
    (tmp_path / "weed").mkdir()
    server = subprocess.Popen(args, env={**os.environ, "AWS_ACCESS_KEY_ID": KEY,
                                         "AWS_SECRET_ACCESS_KEY": SECRET},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{base + 4}"
    for key, value in [("AWS_ACCESS_KEY_ID", KEY), ("AWS_SECRET_ACCESS_KEY", SECRET),
                       ("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT", endpoint), ("AWS_ALLOW_HTTP", "true")]:
        monkeypatch.setenv(key, value)
    try:
        # Ready when the bucket answers a signed request: listing the versions of a dataset
        # that does not exist yet then fails for that reason, not for the connection or bucket.
        deadline = time.monotonic() + 60
        while True:
            try:
                vecfusion.connect().sql(f"SELECT * FROM vecfusion_versions('s3://{BUCKET}/probe')").to_pylist()
                break
            except Exception as e:  # noqa: BLE001 - the message decides
                text = str(e)
                if not any(t in text for t in ("NoSuchBucket", "onnect", "error sending")):
                    break
            assert time.monotonic() < deadline, "S3 server not ready"
            time.sleep(0.2)
        yield endpoint
    finally:
        server.kill()
        server.wait()


def test_a_dataset_on_s3_round_trips_through_python(s3_endpoint):
    vectors = clustered(3000, 16)
    session = vecfusion.connect()
    location = f"s3://{BUCKET}/from-python"
    items = session.create_dataset("items", location, vectors)
    assert items.count() == 3000
    items.create_index(kind="IVF_FLAT", num_partitions=8, progress=False)
    hits = items.search(vectors[:5] + 0.01, k=3, nprobes=8).to_pandas()
    for i in range(5):
        d = ((vectors - (vectors[i] + 0.01)) ** 2).sum(1)
        want = np.argsort(d, kind="stable")[:3].tolist()
        assert hits[hits.query_index == i]["id"].tolist() == want
    # Another session (another process would do the same) opens it by URL.
    again = vecfusion.connect().register_dataset("again", location)
    assert again.count() == 3000
    assert len(again.indexes()) == 1
