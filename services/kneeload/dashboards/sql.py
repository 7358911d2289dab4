"""A PostgreSQL (``grafana-postgresql-datasource``) query for the foundation SDK's panels.

The SDK ships typed query builders for many data sources but not for Grafana's core SQL
data sources, so this is the same small pattern it uses (a ``Dataquery`` variant and its
builder). Each query also carries the columns the panel expects, which the tests check
against the real database; they are not part of the JSON Grafana reads.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

__all__ = ["DATASOURCE_TYPE", "SQL", "SQLQuery", "datasource_ref"]

DATASOURCE_TYPE = "grafana-postgresql-datasource"
Format = typing.Literal["table", "time_series"]


def datasource_ref(uid: str) -> dashboard.DataSourceRef:
    return dashboard.DataSourceRef(type_val=DATASOURCE_TYPE, uid=uid)


class SQLQuery(cogvariants.Dataquery):
    def __init__(
        self,
        ref_id: str = "A",
        raw_sql: str = "",
        format_val: Format = "table",
        datasource: dashboard.DataSourceRef | None = None,
        expect: tuple[str, ...] = (),
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val = format_val
        self.datasource = datasource
        self.expect = expect

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "refId": self.ref_id,
            "editorMode": "code",
            "format": self.format_val,
            "rawQuery": True,
            "rawSql": self.raw_sql,
        }
        if self.datasource is not None:
            out["datasource"] = self.datasource
        return out


class SQL(cogbuilder.Builder[SQLQuery]):
    """``SQL(sql, expect=(...columns...)).format("time_series").ref_id("B")``."""

    def __init__(self, sql: str, *, expect: typing.Sequence[str]) -> None:
        self._internal = SQLQuery(raw_sql=_tidy(sql), expect=tuple(expect))

    def build(self) -> SQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self

    def format(self, fmt: Format) -> typing.Self:
        self._internal.format_val = fmt
        return self

    def datasource(self, ref: dashboard.DataSourceRef) -> typing.Self:
        self._internal.datasource = ref
        return self


def _tidy(sql: str) -> str:
    lines = [ln.rstrip() for ln in sql.strip("\n").splitlines()]
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    return "\n".join(ln[indent:] for ln in lines)
