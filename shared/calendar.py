"""Business time and quiet hours, in Europe/Paris. Pure functions, no I/O.

**Business day**: Monday to Friday, except the French public holidays of metropolitan France
(``holidays.France()``, national list: no Alsace-Moselle extras such as Good Friday or
26 December). The *lundi de Pentecôte* is in that list and counts as a holiday.

**Business time**: every hour of a business day counts, midnight to midnight (Paris wall
clock); no hour of a weekend or holiday counts. 48 business hours are thus two whole business
days: a referral on Friday at 18:00 is due on Tuesday at 18:00, and one more day later when a
holiday falls in between. France changes clocks on Sundays, so a business day always lasts
24 real hours; the arithmetic is still done on real (UTC) instants.

**Quiet hours**: SMS and phone calls are only allowed from 09:00 (included) to 20:00
(excluded), Paris time, and never on a Sunday or a public holiday. Saturdays are allowed.
Letters and e-mails are not restricted.

Every function takes aware datetimes and returns aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

PARIS = ZoneInfo("Europe/Paris")

QUIET_UNTIL = time(9, 0)
"""Default start of the contact window (first allowed minute)."""
QUIET_FROM = time(20, 0)
"""Default end of the contact window (first forbidden minute)."""

RESTRICTED_CHANNELS = frozenset({"sms", "telephone"})
UNRESTRICTED_CHANNELS = frozenset({"courrier", "email"})

_SATURDAY, _SUNDAY = 5, 6
_MAX_DAYS_SCANNED = 366


@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.France(years=year).keys())


def is_public_holiday(d: date) -> bool:
    """A French public holiday (metropolitan France, national list)."""
    return d in _public_holidays(d.year)


def is_business_day(d: date) -> bool:
    """Monday to Friday and not a French public holiday."""
    return d.weekday() < _SATURDAY and not is_public_holiday(d)


def _require_aware(when: datetime) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"an aware datetime is required, got naive {when.isoformat()}")


def _paris_midnight(d: date) -> datetime:
    """The instant (UTC) at which day ``d`` starts in Paris."""
    return datetime.combine(d, time(0), tzinfo=PARIS).astimezone(UTC)


def _next_business_day(d: date) -> date:
    """The first business day strictly after ``d``."""
    nxt = d + timedelta(days=1)
    while not is_business_day(nxt):
        nxt += timedelta(days=1)
    return nxt


def add_business_hours(start: datetime, hours: int) -> datetime:
    """The instant when ``hours`` business hours have elapsed since ``start`` (aware, UTC out).

    Business time is defined in the module docstring: whole business days, Paris time. A start
    outside business time counts from midnight of the next business day. A deadline that ends
    exactly at the end of a business day is returned as the following midnight (``24:00`` of
    that day). ``hours == 0`` returns ``start`` (in UTC).
    """
    _require_aware(start)
    if hours < 0:
        raise ValueError(f"hours must be >= 0, got {hours}")
    cursor = start.astimezone(UTC)
    if hours == 0:
        return cursor
    remaining = timedelta(hours=hours)
    day = cursor.astimezone(PARIS).date()
    if not is_business_day(day):
        day = _next_business_day(day)
        cursor = _paris_midnight(day)
    while (available := _paris_midnight(day + timedelta(days=1)) - cursor) < remaining:
        remaining -= available
        day = _next_business_day(day)
        cursor = _paris_midnight(day)
    return cursor + remaining


def _check_channel(channel: str) -> None:
    if channel not in RESTRICTED_CHANNELS | UNRESTRICTED_CHANNELS:
        known = sorted(RESTRICTED_CHANNELS | UNRESTRICTED_CHANNELS)
        raise ValueError(f"unknown channel {channel!r}; expected one of {known}")


def _check_window(earliest: time, latest: time) -> None:
    if not earliest < latest:
        raise ValueError(f"contact window must satisfy earliest < latest: {earliest}, {latest}")


def is_contact_day(d: date) -> bool:
    """A day on which SMS and calls may be made: not a Sunday, not a public holiday."""
    return d.weekday() != _SUNDAY and not is_public_holiday(d)


def is_contact_allowed(
    when: datetime,
    channel: str,
    *,
    earliest: time = QUIET_UNTIL,
    latest: time = QUIET_FROM,
) -> bool:
    """Whether ``channel`` may reach a person at ``when`` (see quiet hours above)."""
    _require_aware(when)
    _check_channel(channel)
    _check_window(earliest, latest)
    if channel in UNRESTRICTED_CHANNELS:
        return True
    local = when.astimezone(PARIS)
    return is_contact_day(local.date()) and earliest <= local.time() < latest


def _window_opening(d: date, earliest: time) -> datetime:
    return datetime.combine(d, earliest, tzinfo=PARIS).astimezone(UTC)


def next_allowed_time(
    when: datetime,
    channel: str,
    *,
    earliest: time = QUIET_UNTIL,
    latest: time = QUIET_FROM,
) -> datetime:
    """``when`` itself if ``channel`` may be used then, else the next opening of the window.

    Letters (``courrier``) and e-mails are never deferred. SMS and ``telephone`` are deferred
    to ``earliest`` (default 09:00, Paris) of the same day when it is too early, otherwise of
    the next day that is neither a Sunday nor a public holiday. A deferred time is in UTC.
    """
    if is_contact_allowed(when, channel, earliest=earliest, latest=latest):
        return when
    local = when.astimezone(PARIS)
    day = local.date()
    if is_contact_day(day) and local.time() < earliest:
        return _window_opening(day, earliest)
    for _ in range(_MAX_DAYS_SCANNED):
        day += timedelta(days=1)
        if is_contact_day(day):
            return _window_opening(day, earliest)
    raise RuntimeError(f"no contact day within {_MAX_DAYS_SCANNED} days of {when.isoformat()}")
