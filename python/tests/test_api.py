"""The Python API against real datasets on disk."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import vecfusion


def test_select_one_to_pandas():
    df = vecfusion.connect().sql("SELECT 1 AS one").to_pandas()
    assert df["one"].tolist() == [1]


def test_numpy_round_trip(session, items, vectors):
    assert items.count() == len(vectors)
    table = items.to_arrow()
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    got = np.stack(table.sort_by("id")["embedding"].to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(got, vectors)
    assert set(table["label"].to_pylist()) == {"ok", "spam"}


def test_pandas_round_trip(session, tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 3], "vec": [np.ones(4), np.zeros(4), np.arange(4.0)]})
    t = session.create_dataset("frame", str(tmp_path / "f"), frame)
    back = t.to_pandas().sort_values("id")
    assert back["id"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(np.stack(back["vec"].to_numpy()), np.stack(frame["vec"]).astype(np.float32))
    assert session.sql("SELECT arrow_typeof(vec) AS t FROM frame LIMIT 1").to_pylist() == [
        {"t": "FixedSizeList(4 x Float32)"}
    ]


def test_batch_search_matches_exact(session, items, vectors):
    items.create_index(kind="IVF_FLAT", num_partitions=8, progress=False)
    queries = vectors[:1000] + 0.01
    hits = items.search(queries, k=5, nprobes=8)
    assert len(hits) == 5000
    frame = hits.to_pandas()
    assert frame["query_index"].nunique() == 1000
    assert list(frame.columns) == ["query_index", "id", "label", "embedding", "_distance"]
    # Full probing of IVF_FLAT is exact: compare a few queries with brute force.
    for i in [0, 17, 999]:
        d = np.sqrt(((vectors - queries[i]) ** 2).sum(1))
        want = np.argsort(d, kind="stable")[:5]
        got = frame[frame.query_index == i]
        assert got["id"].tolist() == want.tolist()
        np.testing.assert_allclose(got["_distance"].to_numpy(), d[want], rtol=1e-5)


def test_filter_applies_before_top_k(session, items, vectors):
    items.create_index(kind="IVF_PQ", num_partitions=16, num_sub_vectors=8, progress=False)
    hits = items.search(vectors[3], k=10, filter="label = 'spam' AND id < 200").to_pandas()
    assert len(hits) == 10
    assert (hits["label"] == "spam").all() and (hits["id"] < 200).all()


def test_create_index_mirrors_sql_and_reports_progress(session, items):
    events = []
    res = session._native.sql(
        "CREATE VECTOR INDEX i ON items (embedding) USING IVF_PQ WITH (num_partitions = 16, num_sub_vectors = 8)",
        progress=lambda *e: events.append(e),
    )
    row = vecfusion.Result(res).to_pylist()[0]
    assert row["rows_indexed"] == 5000 and row["accelerator"] == "cpu"
    phases = {e[0] for e in events}
    assert {"sample", "train_ivf", "train_quantizer", "encode", "write", "commit"} <= phases
    assert items.indexes().to_pylist()[0]["index"] == "i"


def test_appended_rows_join_the_index_as_a_segment(session, items):
    items.create_index(kind="IVF_FLAT", num_partitions=8, progress=False)
    session.sql("INSERT INTO items SELECT id + 100000, label, embedding FROM items WHERE id < 300")
    before = items.indexes().to_pylist()[0]
    assert (before["segments"], before["rows_not_indexed"]) == (1, 300)
    events = []
    res = session._native.sql("OPTIMIZE VECTOR INDEX items_embedding_idx ON items", progress=lambda *e: events.append(e))
    row = vecfusion.Result(res).to_pylist()[0]
    assert (row["rows_encoded"], row["segments_before"], row["segments_after"]) == (300, 1, 2)
    # Copies of indexed rows sit exactly as close to their centroids as the originals.
    assert row["drift"] == pytest.approx(1.0, rel=0.2)
    assert {"encode", "write", "commit"} <= {e[0] for e in events}
    after = items.indexes().to_pylist()[0]
    assert (after["segments"], after["rows_not_indexed"], after["rows_indexed"]) == (2, 0, 5300)
    again = items.optimize_index(progress=False).to_pylist()[0]
    assert again["rows_encoded"] == 0 and "nothing to do" in again["message"]
    merged = items.optimize_index(merge_segments=2, progress=False).to_pylist()[0]
    assert merged["segments_after"] == 1


def test_errors_carry_the_rust_message(session, items, tmp_path):
    with pytest.raises(RuntimeError, match="32-dimensional vectors, the queries have 3"):
        items.search(np.ones(3), k=1)
    with pytest.raises(RuntimeError, match="unknown option 'colour'"):
        items.create_index(colour=1, progress=False)
    with pytest.raises(RuntimeError, match=r"nothing is not a vecfusion dataset \(no _versions/\*\.manifest found\)"):
        session.register_dataset("missing", str(tmp_path / "nothing"))
    with pytest.raises(RuntimeError, match="num_sub_vectors = 5 does not divide the dimension 32"):
        items.create_index(num_sub_vectors=5, progress=False)
    with pytest.raises(TypeError, match="create_dataset takes"):
        session.create_dataset("x", str(tmp_path / "x"), "not data")


def test_versions_and_time_travel(session, items):
    session.sql("DELETE FROM items WHERE label = 'spam'")
    versions = items.versions().to_pandas()
    assert versions["operation"].tolist() == ["CREATE", "APPEND", "DELETE"]
    before = session.sql("SELECT count(*) AS n FROM items VERSION AS OF 2").to_pylist()[0]["n"]
    assert before == 5000 and items.count() == 4500


def test_interrupt_cancels_a_build_and_leaves_the_dataset(session, tmp_path):
    import _thread
    import threading

    big = np.random.default_rng(1).normal(size=(200_000, 64)).astype(np.float32)
    t = session.create_dataset("big", str(tmp_path / "big"), big)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        t.create_index(kind="IVF_FLAT", num_partitions=1024, max_iterations=50, tolerance=0, progress=False)
    timer.cancel()
    assert len(t.versions()) == 2
    assert len(t.indexes()) == 0
    assert t.count() == 200_000
