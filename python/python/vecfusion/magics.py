"""Jupyter magics: ``%vsql`` (one line) and ``%%vsql`` (a cell) run SQL in a shared session.

They follow jupysql's habits where they fit:

- ``{name}`` is replaced by the value of the Python variable ``name`` as written into the SQL
  (a template: a table name, a clause); a numpy array or a list becomes a vector literal
  ``[0.1, 0.2, ...]``. Other braces are left alone.
- ``:name`` is a *parameter*: the value as a SQL literal — a string quoted (``'it''s'``), a
  number, a boolean, a vector — so text from the notebook never breaks the statement.
  ``::`` casts and names that are not notebook variables are left alone.
- ``result << %%vsql`` (``%%vsql result <<`` on the magic line, or ``%vsql result << SELECT
  ...``) stores the result in the variable ``result`` instead of displaying it.

The session is ``vecfusion.magics.session()``; its tables are visible to every magic.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import numpy as np

from . import Result, Session

_SESSION: Optional[Session] = None
_NAME = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")
_ASSIGN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*<<\s*")


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


def _parameter(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if value is None:
        return "NULL"
    return _literal(value)


def substitute(sql: str, namespace: dict[str, Any]) -> str:
    """Replaces ``{name}`` by ``namespace[name]`` as written and ``:name`` by it as a SQL
    literal (unknown names stay)."""
    sql = _NAME.sub(lambda m: _literal(namespace[m.group(1)]) if m.group(1) in namespace else m.group(0), sql)
    return _PARAMETER.sub(lambda m: _parameter(namespace[m.group(1)]) if m.group(1) in namespace else m.group(0), sql)


def split_assignment(text: str) -> tuple[Optional[str], str]:
    """``"name << rest"`` -> ``("name", "rest")``; anything else -> ``(None, text)``."""
    m = _ASSIGN.match(text)
    if m is None:
        return None, text
    return m.group(1), text[m.end():]


def register(ipython: Any) -> None:
    from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

    @magics_class
    class VecfusionMagics(Magics):
        @no_var_expand  # `{name}` is ours to substitute, as SQL literals
        @line_cell_magic
        def vsql(self, line: str, cell: Optional[str] = None) -> Result:
            """Runs SQL in the vecfusion session: ``%vsql SELECT ...`` or a ``%%vsql`` cell."""
            target, rest = split_assignment(line)
            query = cell if cell is not None else rest
            result = session().sql(substitute(query, self.shell.user_ns))
            if target is not None:
                self.shell.user_ns[target] = result
                return None
            return result

    ipython.register_magics(VecfusionMagics)
