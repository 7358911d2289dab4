"""HTML templating for every kneeload report: Jinja2 with autoescaping always on, so a name,
id or message from the database is text in the page, never markup (an athlete called
``<script>…`` prints as those characters). Templates live in ``reports/templates``."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import jinja2

__all__ = ["environment", "render"]


def _num(value: Any, digits: int = 1) -> str:
    """A number for a table cell ('' when missing or not finite)."""
    if value is None:
        return ""
    v = float(value) if isinstance(value, Decimal | int | float) else None
    if v is None or not math.isfinite(v):
        return ""
    return f"{v:,.{digits}f}"


def _when(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime(fmt)
    return "" if value is None else str(value)


_ENV: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    """The shared environment (autoescape on for every template, undefined is an error)."""
    global _ENV
    if _ENV is None:
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("kneeload.reports", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["num"] = _num
        env.filters["when"] = _when
        _ENV = env
    return _ENV


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
