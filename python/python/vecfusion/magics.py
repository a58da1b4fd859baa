"""Jupyter magics: ``%vsql`` (one line) and ``%%vsql`` (a cell) run SQL in a shared session.

``{name}`` in the SQL is replaced by the value of the Python variable ``name``: a numpy array
or a list becomes a vector literal ``[0.1, 0.2, ...]``, a string is inserted as written, a
number as its literal. Other braces are left alone. The session is
``vecfusion.magics.session()``; its tables are visible to every magic.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import numpy as np

from . import Result, Session

_SESSION: Optional[Session] = None
_NAME = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def session() -> Session:
    """The session the magics use (created on first use)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = Session()
    return _SESSION


def _literal(value: Any) -> str:
    if isinstance(value, np.ndarray) or (isinstance(value, (list, tuple)) and value and not isinstance(value[0], str)):
        flat = np.asarray(value, dtype=np.float64).reshape(-1)
        return "[" + ", ".join(repr(float(v)) for v in flat) + "]"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(value.item() if hasattr(value, "item") else value)
    return str(value)


def substitute(sql: str, namespace: dict[str, Any]) -> str:
    """Replaces ``{name}`` by the SQL literal of ``namespace[name]`` (unknown names stay)."""
    return _NAME.sub(lambda m: _literal(namespace[m.group(1)]) if m.group(1) in namespace else m.group(0), sql)


def register(ipython: Any) -> None:
    from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

    @magics_class
    class VecfusionMagics(Magics):
        @no_var_expand  # `{name}` is ours to substitute, as SQL literals
        @line_cell_magic
        def vsql(self, line: str, cell: Optional[str] = None) -> Result:
            """Runs SQL in the vecfusion session: ``%vsql SELECT ...`` or a ``%%vsql`` cell."""
            query = cell if cell is not None else line
            return session().sql(substitute(query, self.shell.user_ns))

    ipython.register_magics(VecfusionMagics)
