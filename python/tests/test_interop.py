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


def test_magics_follow_jupysql_parameters_and_assignment():
    from IPython.testing.globalipapp import get_ipython

    from vecfusion.magics import split_assignment, substitute

    shell = get_ipython()  # the one test shell, started by the first test that needs it
    shell.run_line_magic("load_ext", "vecfusion")
    # :name is a parameter: a string is quoted (and its quotes doubled), a vector is a literal.
    shell.user_ns["text"] = "it's"
    shell.user_ns["q"] = [3.0, 4.0]
    res = shell.run_line_magic("vsql", "SELECT :text AS t, l2_distance([0.0, 0.0], :q) AS d")
    assert res.to_pylist() == [{"t": "it's", "d": 5.0}]
    # `result << %%vsql` stores instead of displaying.
    assert shell.run_cell_magic("vsql", "found <<", "SELECT 2 AS two") is None
    assert shell.user_ns["found"].to_pylist() == [{"two": 2}]
    assert shell.run_line_magic("vsql", "again << SELECT 3 AS three") is None
    assert shell.user_ns["again"].to_pylist() == [{"three": 3}]
    # Casts, unknown names and `::` stay as written.
    assert substitute("SELECT 1::BIGINT, :nope, :n", {"n": 7}) == "SELECT 1::BIGINT, :nope, 7"
    assert split_assignment("SELECT 1") == (None, "SELECT 1")
