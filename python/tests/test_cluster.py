"""``vecfusion.connect("df://HOST:PORT")``: statements run on a real cluster, a
``vecfusion-scheduler`` and a ``vecfusion-executor`` process on 127.0.0.1 (built by
``cargo build --workspace``, which the test command runs first)."""

import os
import pathlib
import socket
import subprocess
import time

import pytest

import vecfusion

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _binary(name: str) -> str:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "debug" / name
    assert path.exists(), f"{path} is missing: run `cargo build --workspace` first"
    return str(path)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process exited with {process.returncode}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture
def cluster(tmp_path):
    port = _port()
    local = ["--bind-host", "127.0.0.1", "--external-host", "127.0.0.1"]
    scheduler = subprocess.Popen([_binary("vecfusion-scheduler"), *local, "--bind-port", str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes = [scheduler]
    try:
        _wait(port, scheduler)
        flight = _port()
        executor = subprocess.Popen(
            [_binary("vecfusion-executor"), *local, "--scheduler-host", "127.0.0.1",
             "--scheduler-port", str(port), "--bind-port", str(flight),
             "--bind-grpc-port", str(_port()), "--bind-health-port", str(_port()),
             "--vcores", "2", "--work-dir", str(tmp_path / "work")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(executor)
        _wait(flight, executor)
        yield f"df://127.0.0.1:{port}"
    finally:
        for p in processes:
            p.kill()
            p.wait()


def _script(path) -> str:
    return (f"CREATE EXTERNAL TABLE items (id BIGINT NOT NULL, embedding FLOAT[8]) "
            f"STORED AS VECFUSION LOCATION '{path}'; "
            "INSERT INTO items SELECT id, vector FROM random_vectors(1500, 8, 4, 3); "
            "CREATE VECTOR INDEX idx ON items (embedding) USING IVF_FLAT WITH (num_partitions = 4)")


QUERY = "SELECT id FROM items ORDER BY l2_distance(embedding, [1,0,0,0,0,0,0,1]) LIMIT 10"


def test_sql_on_a_cluster_answers_as_in_process(cluster, tmp_path):
    remote = vecfusion.connect(cluster)
    assert remote.remote == cluster
    local = vecfusion.connect()
    remote.sql(_script(tmp_path / "remote"))
    local.sql(_script(tmp_path / "local"))
    plan = remote.sql("EXPLAIN " + QUERY).to_pandas()
    assert plan["plan"].str.contains("AnnSearchExec").any()
    assert plan["plan_type"].str.contains("distributed_plan").any()
    assert remote.sql(QUERY).to_pandas()["id"].tolist() == local.sql(QUERY).to_pandas()["id"].tolist()


def test_search_on_a_cluster_session_is_refused_not_run_locally(cluster, tmp_path):
    remote = vecfusion.connect(cluster)
    remote.sql(_script(tmp_path / "items"))
    with pytest.raises(NotImplementedError, match="search through SQL"):
        remote.table("items").search([1, 0, 0, 0, 0, 0, 0, 1], k=3)


def test_an_unreachable_cluster_names_its_address():
    url = f"df://127.0.0.1:{_port()}"
    with pytest.raises(RuntimeError, match=f"cannot reach the vecfusion scheduler at {url}"):
        vecfusion.connect(url)
