"""Where history files come from (``kneeload import``): files, folders, ``.zip`` archives
(also nested, as Garmin's and Strava's bulk exports are), ``.gz``-compressed files; and who
each file belongs to (one athlete, or a mapping file by device serial or file pattern).

Nothing here decodes activities: :func:`read` returns a file's bytes (decompressed) for
:mod:`kneeload.ingest.activity`.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ACTIVITY_SUFFIXES",
    "Mapping",
    "MappingError",
    "MappingRule",
    "Source",
    "SourceError",
    "discover",
    "read",
]

#: file name endings kneeload decodes (each optionally followed by ``.gz``)
ACTIVITY_SUFFIXES = (".fit", ".tcx", ".gpx")
_MAX_MEMBER_BYTES = 256 << 20  # a single activity larger than this is not a watch file


class SourceError(ValueError):
    """A source cannot be read; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Source:
    """One activity file: ``path`` on disk, then the chain of archive ``members`` inside it.

    ``name`` is what users see and what mapping patterns match: the path as given (relative
    to the folder it was found in, prefixed by that folder's name) followed by ``/member``
    for each archive level. ``size`` and ``mtime_ns`` are the file on disk's (the resume
    ledger's key, with ``name``).
    """

    path: str
    members: tuple[str, ...]
    name: str
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        return f"{self.path}\x1f{'/'.join(self.members)}\x1f{self.size}\x1f{self.mtime_ns}"


def _kind(name: str) -> str | None:
    low = name.lower()
    if low.endswith(".zip"):
        return "zip"
    base = low[:-3] if low.endswith(".gz") else low
    if base.endswith(ACTIVITY_SUFFIXES):
        return "activity"
    return None


def discover(paths: Sequence[Path]) -> tuple[list[Source], list[tuple[str, str, str]]]:
    """Every activity file under ``paths`` (files, folders recursively, zip archives), in a
    stable order; and the entries passed over as ``(name, reason, detail)``."""
    found: list[Source] = []
    passed: list[tuple[str, str, str]] = []
    for root in paths:
        if not root.exists():
            passed.append((str(root), "not_found", "no such file or folder"))
            continue
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for p in files:
            rel = p.relative_to(root) if root.is_dir() else None
            name = str(Path(root.name) / rel) if rel is not None else str(p)
            if any(part.startswith(".") for part in (rel.parts if rel else ())):
                continue  # hidden files and folders (.DS_Store, .git)
            kind = _kind(p.name)
            st = p.stat()
            if kind == "activity":
                found.append(Source(str(p), (), name, st.st_size, st.st_mtime_ns))
            elif kind == "zip":
                try:
                    with zipfile.ZipFile(p) as zf:
                        for members in _zip_members(zf, ()):
                            full = "/".join((name, *members))
                            found.append(Source(str(p), members, full, st.st_size, st.st_mtime_ns))
                except (zipfile.BadZipFile, OSError) as exc:
                    passed.append((name, "corrupt_archive", f"not a readable zip: {exc}"))
            else:
                passed.append((name, "unsupported_file", "not .fit/.tcx/.gpx(.gz) or .zip"))
    return found, passed


def _zip_members(zf: zipfile.ZipFile, chain: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Member chains of the activity files in ``zf`` (zips inside zips up to 3 deep)."""
    for info in sorted(zf.infolist(), key=lambda i: i.filename):
        parts = info.filename.split("/")
        if info.is_dir() or any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        kind = _kind(info.filename)
        if kind == "activity":
            yield (*chain, info.filename)
        elif kind == "zip" and len(chain) < 3:
            try:
                with zipfile.ZipFile(io.BytesIO(zf.read(info))) as inner:
                    yield from _zip_members(inner, (*chain, info.filename))
            except zipfile.BadZipFile:
                continue


def read(src: Source) -> bytes:
    """The activity's bytes: out of its archives, gunzipped when its name ends in ``.gz``."""
    try:
        if not src.members:
            data = Path(src.path).read_bytes()
            last = src.path
        else:
            with zipfile.ZipFile(src.path) as zf:
                data = _read_chain(zf, src.members)
            last = src.members[-1]
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise SourceError("unreadable", f"cannot read {src.name}: {exc}") from exc
    if last.lower().endswith(".gz"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                data = gz.read(_MAX_MEMBER_BYTES + 1)
        except (OSError, EOFError) as exc:
            raise SourceError("corrupt_gzip", f"{src.name} is not valid gzip: {exc}") from exc
    if len(data) > _MAX_MEMBER_BYTES:
        raise SourceError("too_large", f"{src.name} is over {_MAX_MEMBER_BYTES >> 20} MiB")
    return data


def _read_chain(zf: zipfile.ZipFile, members: tuple[str, ...]) -> bytes:
    data = zf.read(members[0])
    for m in members[1:]:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            data = inner.read(m)
    return data


# ---------------------------------------------------------------------------- mapping


class MappingError(ValueError):
    """The mapping file is malformed (line and reason in the message)."""


@dataclass(frozen=True, slots=True)
class MappingRule:
    athlete: str
    device: str | None = None
    serial: int | None = None
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Mapping:
    """Who a file belongs to. Rules by device ``serial`` (FIT ``file_id.serial_number``) win
    over rules by ``pattern`` (shell-style, matched against the file's name, first match),
    which win over the default athlete (``--athlete``)."""

    rules: tuple[MappingRule, ...] = ()
    athlete: str | None = None
    device: str | None = None

    @classmethod
    def load(cls, path: Path, *, athlete: str | None = None, device: str | None = None) -> Mapping:
        """A CSV file with a header: ``athlete`` and ``serial`` or ``pattern`` per row,
        optional ``device``. Lines starting with ``#`` are comments."""
        text = path.read_text(encoding="utf-8-sig")
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        reader = csv.DictReader(lines)
        cols = {c.strip().lower() for c in reader.fieldnames or []}
        if "athlete" not in cols or not cols & {"serial", "pattern"}:
            raise MappingError(
                f"{path}: the header needs 'athlete' and 'serial' and/or 'pattern' "
                f"(optional 'device'); found {sorted(cols)}"
            )
        rules = []
        for n, raw in enumerate(reader, 2):
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            serial_text, pattern = row.get("serial", ""), row.get("pattern", "")
            if not row.get("athlete") or not (serial_text or pattern):
                raise MappingError(f"{path} line {n}: needs an athlete and a serial or a pattern")
            try:
                serial = int(serial_text) if serial_text else None
            except ValueError as exc:
                raise MappingError(
                    f"{path} line {n}: serial {serial_text!r} is not a number"
                ) from exc
            rules.append(
                MappingRule(row["athlete"], row.get("device") or None, serial, pattern or None)
            )
        return cls(tuple(rules), athlete, device)

    def resolve(self, name: str, serial: int | None) -> tuple[str | None, str | None, str]:
        """``(athlete, device, how)`` for a file; athlete None when nothing matches."""
        if serial is not None:
            for r in self.rules:
                if r.serial is not None and r.serial == serial:
                    return r.athlete, r.device, f"serial {serial}"
        for r in self.rules:
            if r.pattern is not None and _match(name, r.pattern):
                return r.athlete, r.device, f"pattern {r.pattern}"
        if self.athlete is not None:
            return self.athlete, self.device, "--athlete"
        return None, None, "no rule"

    def athletes(self) -> set[str]:
        out = {r.athlete for r in self.rules}
        if self.athlete:
            out.add(self.athlete)
        return out


def _match(name: str, pattern: str) -> bool:
    """Shell-style match against the whole name or any trailing part of it."""
    if fnmatch.fnmatch(name, pattern):
        return True
    parts = name.split("/")
    return any(fnmatch.fnmatch("/".join(parts[i:]), pattern) for i in range(1, len(parts)))
