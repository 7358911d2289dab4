"""Team-level pain–load correlation, plain Python (no Kafka): what the team agent runs.

The athletes of one team live on different partitions, and so on different workers.
Each athlete's processor publishes a **snapshot** of its paired observations (load on
day t, pain on day t + lag; per metric and lag, at most ``max_pairs`` each) to the
internal topic ``worker.pairs-by-team``, keyed by team_id
(:meth:`kneeload.worker.athlete.AthleteProcessor.share_pairs`). Every message of one
team lands on one partition, where :class:`TeamProcessor` keeps the latest snapshot
per athlete and recomputes the repeated-measures correlation of each changed series
with :func:`kneeload.core.correlation.rmcorr` (Bakdash & Marusich 2017) — no formula
here.

State (a plain keyed table in the worker, a dict in the tests) is, per team, one
directory record (:class:`kneeload.worker.state.TeamDirectory`) under the team id and one
record per athlete (:class:`kneeload.worker.state.TeamEntry`) under ``team_id|athlete_id``
(both in the team's partition; MessagePack in the table): conceptually
``team_id → {athlete_id → pairs}``, stored so that a pain report rewrites one athlete's
pairs (≤ 2 × 365) in the changelog, not the whole team's.

Determinism
-----------
* The latest snapshot per athlete wins (messages of one athlete arrive in the order its
  worker sent them: one producer, one partition).
* rmcorr's input is built in a canonical order (athletes sorted by id, each athlete's
  pairs by load day), so the result depends on the set of pairs, not on the order in
  which athletes' messages arrived.
* The event ``time`` of a series is the latest event time of any change an athlete
  shared for it (a maximum: it never moves back, also when an athlete leaves), and the
  event id is ``team:<team>:<metric>:<lag>:rmcorr:<UTC date of time>``. A replayed
  message changes nothing and re-publishes the same events with the same ids; the sink
  upserts by id.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import msgspec

from kneeload.core.correlation import (
    DEFAULT_CORRELATION_CONFIG,
    CorrelationConfig,
    RmcorrResult,
    rmcorr,
)
from kneeload.topics import CORRELATIONS
from kneeload.worker.athlete import Output
from kneeload.worker.state import TeamDirectory, TeamEntry, TeamSeries
from kneeload.worker.timeutil import iso

__all__ = ["TeamProcessor", "entry_key", "parse_series", "series_key", "team_event"]

METHOD = "rmcorr"


def series_key(metric: str, lag_days: int) -> str:
    """Key of one series (``"pfj_load_mpa_s:1"``) in a pairs message and the team state."""
    return f"{metric}:{lag_days}"


def parse_series(key: str) -> tuple[str, int]:
    """Inverse of :func:`series_key`: ``(metric, lag_days)``."""
    metric, lag = key.rsplit(":", 1)
    return metric, int(lag)


def entry_key(team_id: str, athlete_id: str) -> str:
    """Table key of one athlete's pairs within a team (owner: the team)."""
    return f"{team_id}|{athlete_id}"


def team_event(team_id: str, key: str, time_ms: int, res: RmcorrResult) -> dict[str, Any]:
    """A ``correlation`` event (scope team, method rmcorr) from core's result.

    Parameters
    ----------
    team_id : str
        The team.
    key : str
        The series (:func:`series_key`).
    time_ms : int
        Event time of the latest change to the series, epoch ms.
    res : RmcorrResult
        :func:`kneeload.core.correlation.rmcorr` of the team's pairs.

    Returns
    -------
    dict
        The event: ``n`` = observations rmcorr used (athletes with one pair add
        nothing), statistics None and ``withheld_reason`` set when withheld.
    """
    metric, lag = parse_series(key)
    t = iso(time_ms)
    return {
        "id": f"team:{team_id}:{metric}:{lag}:{METHOD}:{t[:10]}",
        "scope": "team",
        "athlete_id": None,
        "team_id": team_id,
        "metric": metric,
        "lag_days": lag,
        "method": METHOD,
        "n": res.n_obs,
        "r": res.r,
        "df": None if res.withheld else res.df,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "p_value": res.p_value,
        "withheld_reason": res.reason_code if res.withheld else None,
        "time": t,
    }


class TeamProcessor:
    """Keeps each team's latest pairs per athlete; publishes rmcorr per series.

    Parameters
    ----------
    store : MutableMapping
        Decoded table values: ``team_id`` → :class:`~kneeload.worker.state.TeamDirectory`
        and ``team_id|athlete_id`` → :class:`~kneeload.worker.state.TeamEntry`. A dict in
        the tests, the ``teams`` table in the worker.
    config : CorrelationConfig, optional
        Minimums for rmcorr (``min_subjects``, ``min_n_team``) and the confidence level;
        core's defaults.
    """

    def __init__(
        self,
        store: MutableMapping[str, Any],
        config: CorrelationConfig = DEFAULT_CORRELATION_CONFIG,
    ) -> None:
        self.store = store
        self.config = config

    def on_pairs(self, msg: dict[str, Any]) -> list[Output]:
        """One athlete's snapshot: store it, recompute the changed series, return events.

        Parameters
        ----------
        msg : dict
            ``{"team_id", "athlete_id", "series": {series: {"t": ms, "pairs": [...]}}}``;
            empty ``series``: the athlete left the team.

        Returns
        -------
        list of Output
            One ``correlations`` event per series that changed; for a message that
            changes nothing (a replay) every series it names, with the same ids.
        """
        team, aid = str(msg["team_id"]), str(msg["athlete_id"])
        series = msgspec.convert(msg.get("series") or {}, dict[str, TeamSeries], strict=False)
        ekey = entry_key(team, aid)
        old = self.store.get(ekey)
        old_series = old.series if isinstance(old, TeamEntry) else {}
        changed = sorted(
            k for k in set(series) | set(old_series) if series.get(k) != old_series.get(k)
        )
        directory = self._directory(team)
        athletes = set(directory.athletes)
        times = dict(directory.t)
        for k, v in series.items():
            times[k] = max(int(times.get(k, 0)), v.t)
        if series:
            athletes.add(aid)
        else:
            athletes.discard(aid)
        new_dir = TeamDirectory(sorted(athletes), times)
        if changed:
            if series:
                self.store[ekey] = TeamEntry(series)
            elif old is not None:
                del self.store[ekey]
        if new_dir != directory:
            self.store[team] = new_dir
        todo = changed or sorted(series)
        return [(CORRELATIONS, team, self.event(team, k)) for k in todo]

    def pairs(self, team_id: str, key: str) -> tuple[list[str], list[float], list[float]]:
        """The team's pairs of one series in canonical order: (athlete ids, loads, pains).

        Athletes sorted by id, each athlete's pairs sorted by load day.
        """
        subjects: list[str] = []
        xs: list[float] = []
        ys: list[float] = []
        for aid in sorted(self._directory(team_id).athletes):
            entry = self.store.get(entry_key(team_id, aid))
            s = entry.series.get(key) if isinstance(entry, TeamEntry) else None
            if not s:
                continue
            for p in sorted(s.pairs, key=lambda p: p.day):
                subjects.append(aid)
                xs.append(p.load)
                ys.append(p.pain)
        return subjects, xs, ys

    def _directory(self, team_id: str) -> TeamDirectory:
        d = self.store.get(team_id)
        return d if isinstance(d, TeamDirectory) else TeamDirectory()

    def result(self, team_id: str, key: str) -> RmcorrResult:
        """:func:`kneeload.core.correlation.rmcorr` over the team's pairs of one series."""
        return rmcorr(*self.pairs(team_id, key), config=self.config)

    def event(self, team_id: str, key: str) -> dict[str, Any]:
        """The current ``correlation`` event of one team series."""
        t = self._directory(team_id).t.get(key, 0)
        return team_event(team_id, key, t, self.result(team_id, key))
