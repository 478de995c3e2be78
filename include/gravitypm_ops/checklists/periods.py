"""Audit periods: which day / ISO week / month / quarter a checklist run covers."""

from __future__ import annotations

from datetime import date, datetime, timedelta

CADENCES = ("daily", "weekly", "monthly", "quarterly")


def period_of(cadence: str, moment: datetime | date) -> str:
    """The audit period a run belongs to: 2026-11-27, 2026-W48 (ISO week), 2026-11, 2026-Q4.

    `moment` is the run's logical date (or run_after), already in the ops timezone."""
    day = moment.date() if isinstance(moment, datetime) else moment
    if cadence == "daily":
        return day.isoformat()
    if cadence == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if cadence == "monthly":
        return f"{day:%Y-%m}"
    if cadence == "quarterly":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    raise ValueError(f"unknown cadence {cadence!r}; expected one of {', '.join(CADENCES)}")


def period_start(cadence: str, period: str) -> date:
    """First day of a period string (inverse of period_of)."""
    try:
        if cadence == "daily":
            return date.fromisoformat(period)
        if cadence == "weekly":
            return date.fromisocalendar(int(period[:4]), int(period.split("-W")[1]), 1)
        if cadence == "monthly":
            return date(int(period[:4]), int(period[5:7]), 1)
        if cadence == "quarterly":
            return date(int(period[:4]), 3 * (int(period.split("-Q")[1]) - 1) + 1, 1)
    except (ValueError, IndexError):
        raise ValueError(f"{period!r} is not a {cadence} period") from None
    raise ValueError(f"unknown cadence {cadence!r}; expected one of {', '.join(CADENCES)}")


def periods_between(cadence: str, first: date, last: date) -> list[str]:
    """Every period from the one containing `first` to the one containing `last`, in order."""
    periods, day = [], first
    while day <= last:
        period = period_of(cadence, day)
        if not periods or periods[-1] != period:
            periods.append(period)
        day += timedelta(days=1)
    return periods
