"""vecfusion: vector indexes for Apache DataFusion.

``connect()`` gives a :class:`Session` that runs SQL (DataFusion's and vecfusion's own
statements such as ``CREATE VECTOR INDEX``), creates datasets from pyarrow, pandas or numpy,
and searches vectors in batches. ``dataset(path)`` exposes a dataset to the ``datafusion``
package. ``%load_ext vecfusion`` adds the ``%vsql`` / ``%%vsql`` Jupyter magics.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from . import _native
from ._native import __version__

__all__ = ["Session", "Table", "Result", "connect", "dataset", "__version__"]

#: What a query vector can be.
VectorLike = Union[np.ndarray, Sequence[float], Sequence[Sequence[float]]]


class Result:
    """The result of a statement or a search: Arrow record batches.

    Convert with :meth:`to_arrow`, :meth:`to_pandas` or :meth:`to_pylist`; any library that
    reads the Arrow PyCapsule stream interface (``__arrow_c_stream__``) takes it directly.
    """

    def __init__(self, native: "_native.QueryResult") -> None:
        self._native = native

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._native.__arrow_c_stream__(requested_schema)

    def to_arrow(self) -> pa.Table:
        return pa.RecordBatchReader.from_stream(self._native).read_all()

    def to_pandas(self) -> "Any":
        """A pandas DataFrame (vectors become numpy arrays)."""
        return self.to_arrow().to_pandas()

    def to_pylist(self) -> list[dict[str, Any]]:
        return self.to_arrow().to_pylist()

    @property
    def column_names(self) -> list[str]:
        return list(self._native.column_names)

    def __len__(self) -> int:
        return int(self._native.num_rows)

    def __repr__(self) -> str:
        table = self.to_arrow()
        if table.num_columns == 0:
            return "Result(empty)"
        return f"{table.slice(0, 20).to_pandas().to_string()}\n[{table.num_rows} rows]"

    def _repr_html_(self) -> str:
        table = self.to_arrow()
        if table.num_columns == 0:
            return "<i>(no rows)</i>"
        shown = table.slice(0, 50).to_pandas().to_html(max_cols=20)
        more = f"<p>{table.num_rows} rows, first 50 shown</p>" if table.num_rows > 50 else f"<p>{table.num_rows} rows</p>"
        return shown + more


def _sql_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(value.item() if hasattr(value, "item") else value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"option values must be numbers, strings or booleans, got {type(value).__name__}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _fixed_size(table: pa.Table) -> pa.Table:
    """Variable-length float lists whose rows all have one length become ``FLOAT[d]``."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        t = field.type
        if (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
            pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)
        ):
            lengths = pa.compute.list_value_length(column).drop_null()
            if len(lengths) and pa.compute.min(lengths).as_py() == pa.compute.max(lengths).as_py():
                d = pa.compute.min(lengths).as_py()
                chunks = []
                for chunk in column.chunks:
                    values = pa.compute.cast(chunk.flatten(), pa.float32())
                    chunks.append(pa.FixedSizeListArray.from_arrays(values, d, mask=chunk.is_null()))
                column = pa.chunked_array(chunks, pa.list_(pa.float32(), d))
        elif pa.types.is_fixed_size_list(t) and t.value_type != pa.float32():
            column = column.cast(pa.list_(pa.float32(), t.list_size))
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _to_arrow(data: Any, vector_column: str, columns: Optional[Mapping[str, Iterable[Any]]]) -> pa.Table:
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise ValueError(f"a numpy matrix of vectors must be 2-D (rows, dim), got shape {data.shape}")
        n, d = data.shape
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(data, dtype=np.float32).reshape(-1)), d)
        table = {"id": pa.array(np.arange(n, dtype=np.int64))}
        for name, values in (columns or {}).items():
            table[name] = pa.array(values)
        table[vector_column] = vectors
        return pa.table(table)
    if columns:
        raise ValueError("columns=... goes with a numpy matrix; put the columns in the table instead")
    if isinstance(data, pa.Table):
        return _fixed_size(data)
    if hasattr(data, "__arrow_c_stream__") and not hasattr(data, "to_numpy"):
        return _fixed_size(pa.table(data))
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        frame = data.copy()
        for name in frame.columns:
            if frame[name].dtype == object and len(frame) and isinstance(frame[name].iloc[0], np.ndarray):
                frame[name] = [None if v is None else np.asarray(v, dtype=np.float32) for v in frame[name]]
        return _fixed_size(pa.Table.from_pandas(frame, preserve_index=False))
    raise TypeError(
        f"create_dataset takes a pyarrow.Table, a pandas.DataFrame or a 2-D numpy array, got {type(data).__name__}"
    )


class _ProgressBars:
    """tqdm bars (notebook-aware) fed by the engine's progress events."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.phase: Optional[str] = None

    def __call__(self, phase: str, done: int, total: int, unit: str) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        if phase != self.phase:
            self.close()
            self.phase = phase
            # total 0: the amount of work is not known up front (an INSERT counts rows).
            self.bar = tqdm(total=total or None, desc=phase, unit=f" {unit}", leave=phase == "commit")
        if total:
            self.bar.total = max(total, done)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Table:
    """A vecfusion table of a :class:`Session`."""

    def __init__(self, session: "Session", name: str) -> None:
        self.session = session
        self.name = name

    def __repr__(self) -> str:
        return f"vecfusion.Table({self.name!r})"

    def _vector_column(self, column: Optional[str]) -> str:
        if column:
            return column
        schema = self.session.sql(f"SELECT * FROM {_ident(self.name)} LIMIT 0").to_arrow().schema
        vectors = [f.name for f in schema if pa.types.is_fixed_size_list(f.type)]
        if len(vectors) != 1:
            raise ValueError(f"table {self.name} has vector columns {vectors}; pass column=...")
        return vectors[0]

    def create_index(
        self,
        name: Optional[str] = None,
        column: Optional[str] = None,
        kind: str = "IVF_PQ",
        *,
        progress: bool = True,
        **options: Any,
    ) -> Result:
        """``CREATE VECTOR INDEX``: options are the SQL ``WITH (...)`` options
        (``num_partitions``, ``num_sub_vectors``, ``num_bits``, ``metric``, ``accelerator``,
        ``sample_rate``, ``max_iterations``, ``pq_max_iterations``, ``tolerance``, ``seed``,
        ``replace``, ``memory_budget_mb``). Shows progress bars; Ctrl-C (or interrupting the
        kernel) cancels the build and leaves the dataset unchanged."""
        column = self._vector_column(column)
        name = name or f"{self.name}_{column}_idx"
        sql = f"CREATE VECTOR INDEX {_ident(name)} ON {_ident(self.name)} ({_ident(column)}) USING {kind}"
        return self._run_with_options(sql, options, progress)

    def optimize_index(self, name: Optional[str] = None, *, progress: bool = True, **options: Any) -> Result:
        """``OPTIMIZE VECTOR INDEX``: encodes the rows added since the index was built (or last
        optimized) as a new segment with the index's model. Options are the SQL ``WITH (...)``
        options (``merge_segments``, ``retrain``, ``accelerator``, ``memory_budget_mb``). The
        result row says how many rows were encoded, the segments before and after, and
        ``drift`` (new rows' mean squared distance to their centroid over the built rows';
        well above 1, pass ``retrain=True``). ``name`` may be left out when the table has one
        index."""
        if name is None:
            names = [r["index"] for r in self.indexes().to_pylist()]
            if len(names) != 1:
                raise ValueError(f"table {self.name} has indexes {names}; pass name=...")
            name = names[0]
        return self._run_with_options(f"OPTIMIZE VECTOR INDEX {_ident(name)} ON {_ident(self.name)}", options, progress)

    def _run_with_options(self, sql: str, options: Mapping[str, Any], progress: bool) -> Result:
        """Runs ``sql WITH (options)`` with progress bars."""
        with_ = ", ".join(f"{k} = {_sql_value(v)}" for k, v in options.items())
        if with_:
            sql += f" WITH ({with_})"
        bars = _ProgressBars(progress)
        try:
            return Result(self.session._native.sql(sql, progress=bars))
        finally:
            bars.close()

    def drop_index(self, name: str) -> None:
        self.session.sql(f"DROP VECTOR INDEX {_ident(name)} ON {_ident(self.name)}")

    def indexes(self) -> Result:
        return self.session.sql(f"SHOW VECTOR INDEXES FROM {_ident(self.name)}")

    def versions(self) -> Result:
        return self.session.sql(f"SELECT * FROM vecfusion_versions('{self.name}')")

    def count(self) -> int:
        return int(self.session.sql(f"SELECT count(*) AS n FROM {_ident(self.name)}").to_pylist()[0]["n"])

    def to_arrow(self) -> pa.Table:
        return self.session.sql(f"SELECT * FROM {_ident(self.name)}").to_arrow()

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def search(
        self,
        queries: VectorLike,
        k: int = 10,
        *,
        nprobes: Optional[int] = None,
        refine_factor: Optional[int] = None,
        filter: Optional[str] = None,
        column: Optional[str] = None,
    ) -> Result:
        """The ``k`` nearest rows of every query, in one call.

        ``queries`` is one vector ``(dim,)`` or a matrix ``(n, dim)``. The result has
        ``query_index`` (the row of ``queries``), the table's columns and ``_distance``,
        closest first per query. ``filter`` is a SQL predicate applied before the top-k
        (``"label <> 'spam'"``); ``nprobes``/``refine_factor`` override the session settings.
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2:
            raise ValueError(f"queries must be a vector (dim,) or a matrix (n, dim), got shape {q.shape}")
        return Result(
            self.session._native.search(
                self.name, np.ascontiguousarray(q).tobytes(), q.shape[1], k,
                column=column, nprobes=nprobes, refine_factor=refine_factor, filter=filter,
            )
        )


class Session:
    """A DataFusion session with vecfusion installed."""

    def __init__(self, remote: Optional[str] = None) -> None:
        self._native = _native.Session(remote)

    @property
    def remote(self) -> Optional[str]:
        """The cluster's address (``df://HOST:PORT``) when statements run on one, else None."""
        return self._native.remote

    def sql(self, query: str, *, progress: bool = False) -> Result:
        """Runs one or more statements (the last one's result is returned). Everything the
        ``vecfusion`` shell accepts works here: DataFusion SQL, ``VERSION AS OF``,
        ``CREATE/OPTIMIZE/DROP VECTOR INDEX``, ``ALTER TABLE ... ADD COLUMN``,
        ``CREATE EMBEDDING MODEL``, ``SET vecfusion.nprobes``... With ``progress=True`` long
        work (index builds, ADD COLUMN, INSERT) shows tqdm bars."""
        if not progress:
            return Result(self._native.sql(query))
        bars = _ProgressBars(True)
        try:
            return Result(self._native.sql(query, progress=bars))
        finally:
            bars.close()

    def create_dataset(
        self,
        name: str,
        path: str,
        data: Any,
        *,
        vector_column: str = "embedding",
        columns: Optional[Mapping[str, Iterable[Any]]] = None,
    ) -> Table:
        """Writes ``data`` as a new dataset at ``path`` and registers it as table ``name``.

        ``data`` is a pyarrow Table, a pandas DataFrame (vector cells as lists or numpy
        arrays) or a 2-D numpy matrix (then the table is ``id``, the ``columns`` given, and
        ``vector_column``). Float lists of one length become ``FLOAT[d]`` vector columns."""
        self._native.create_dataset(name, path, _to_arrow(data, vector_column, columns))
        return Table(self, name)

    def register_dataset(self, name: str, path: str) -> Table:
        """Registers the existing dataset at ``path`` as table ``name``."""
        self._native.register_dataset(name, path)
        return Table(self, name)

    def table(self, name: str) -> Table:
        if name not in self.tables():
            raise KeyError(f"no table named {name!r}; tables: {self.tables()}")
        return Table(self, name)

    def tables(self) -> list[str]:
        return list(self._native.tables())


def connect(remote: Optional[str] = None) -> Session:
    """A new session: in this process, or with ``remote="df://HOST:PORT"`` on the vecfusion
    cluster whose scheduler listens there (``vecfusion-scheduler``; see the README's "Running
    on a cluster"). On a cluster, SQL runs there and ``Table.search`` is refused (search with
    SQL instead); datasets must be where every executor sees them."""
    return Session(remote)


def dataset(path: str, version: Optional[int] = None) -> "_native.DatasetProvider":
    """The dataset at ``path`` (at ``version`` if given) as a table provider for the
    ``datafusion`` package: ``SessionContext().register_table("items", vecfusion.dataset(p))``."""
    return _native.DatasetProvider(path, version)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext vecfusion``."""
    from .magics import register

    register(ipython)
