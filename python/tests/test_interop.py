"""The datafusion package through the FFI table provider, and the Jupyter magics."""

import numpy as np

import vecfusion


def test_datafusion_package_queries_a_vecfusion_dataset(items, tmp_path):
    import datafusion

    ctx = datafusion.SessionContext()
    ctx.register_table("items", vecfusion.dataset(str(tmp_path / "items")))
    df = ctx.sql("SELECT count(*) AS n, min(id) AS lo FROM items WHERE label = 'spam'").to_pandas()
    assert df["n"].tolist() == [500] and df["lo"].tolist() == [0]
    old = datafusion.SessionContext()
    old.register_table("v1", vecfusion.dataset(str(tmp_path / "items"), version=1))
    assert old.sql("SELECT count(*) AS n FROM v1").to_pandas()["n"].tolist() == [0]


def test_magics_substitute_python_values():
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "vecfusion")
    shell.user_ns["q"] = np.array([3.0, 4.0], dtype=np.float32)
    res = shell.run_line_magic("vsql", "SELECT l2_distance([0.0, 0.0], {q}) AS d")
    assert res.to_pylist() == [{"d": 5.0}]
    shell.user_ns["n"] = 3
    res = shell.run_cell_magic("vsql", "", "SELECT count(*) AS c FROM random_vectors({n}, 2)")
    assert res.to_pylist() == [{"c": 3}]
    assert "<table" in res._repr_html_()
    from vecfusion.magics import substitute

    assert substitute("SELECT {a}, {missing}, {'x': 1}", {"a": "b"}) == "SELECT b, {missing}, {'x': 1}"
