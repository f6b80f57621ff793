"""Reset times in the rate-limit texts the CLIs print: "resets 4:10am (UTC)"
(claude), "try again at 3:25 AM" (codex), "Please retry in 9h41m12.3s"
(gemini), ``retry-after`` (opencode's HTTP errors), and the texts that say a
limit or a billing problem was hit."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo



_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}

#: A reset time may be printed a moment before it is parsed: within this much
#: in the past it is "now", not "tomorrow".
GRACE = timedelta(minutes=10)


def month_number(name: str) -> int | None:
    return _MONTHS.get(name[:3].lower())


def hour24(hour: int, ampm: str) -> int:
    return hour % 12 + (12 if ampm.lower().startswith("p") else 0)


def zone(name: str | None) -> tzinfo | None:
    """The time zone a CLI named ("UTC", "Europe/Berlin"); None is local time."""
    if not name:
        return None
    if name.strip().upper() in ("UTC", "GMT", "Z"):
        return timezone.utc
    try:
        return ZoneInfo(name.strip())
    except Exception:  # noqa: BLE001 - an unknown zone name: UTC, what the CLIs print by default
        return timezone.utc


def next_wall_clock(now: datetime, hour: int, minute: int, tz: tzinfo | None = None) -> float:
    """Epoch seconds of the next ``hour:minute`` in ``tz`` (local when None):
    today, or tomorrow when that is already past."""
    here = now.astimezone(tz) if tz is not None else now.astimezone()
    candidate = here.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate < here - GRACE:
        candidate += timedelta(days=1)
    return candidate.timestamp()


def wall_date(now: datetime, month: int, day: int, hour: int, minute: int, year: int | None = None, tz: tzinfo | None = None) -> float:
    """Epoch seconds of a calendar time; without a year, the next such date."""
    here = now.astimezone(tz) if tz is not None else now.astimezone()
    candidate = here.replace(year=year or here.year, month=month, day=day, hour=hour, minute=minute, second=0, microsecond=0)
    if year is None and candidate < here - timedelta(days=1):
        candidate = candidate.replace(year=candidate.year + 1)
    return candidate.timestamp()


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration ("9h41m12.3s", "41s", "500ms")."""
    if not _DURATION.fullmatch(text):
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in _DURATION_PART.findall(text))


def parse_retry_after(value: str, now: datetime) -> float | None:
    """An HTTP ``retry-after`` header: seconds, or an HTTP date."""
    value = value.strip()
    try:
        return now.timestamp() + float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


_CLAUDE_RESET = re.compile(
    r"resets\s+(?:(?P<mon>[A-Za-z]{3,9})\.?\s+(?P<day>\d{1,2}),?\s+(?:at\s+)?)?"
    r"(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ap>am|pm)\b\s*(?:\((?P<tz>[^)]+)\))?",
    re.IGNORECASE,
)
_CLAUDE_LEGACY = re.compile(r"usage limit reached\|(\d{9,11})")
_CODEX_RESET = re.compile(
    r"try again at\s+(?:(?P<mon>[A-Za-z]{3,9})\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})\s+)?"
    r"(?P<h>\d{1,2}):(?P<m>\d{2})\s*(?P<ap>[AaPp]\.?[Mm]\.?)",
)
_RETRY_IN = re.compile(r"retry in\s+((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.IGNORECASE)


def claude_reset(text: str, now: datetime) -> float | None:
    """"resets 4:10am (UTC)", "resets Nov 27, 1:17am (UTC)", or the older
    "Claude AI usage limit reached|<epoch>"."""
    legacy = _CLAUDE_LEGACY.search(text)
    if legacy:
        return float(legacy.group(1))
    m = _CLAUDE_RESET.search(text)
    if not m:
        return None
    tz = zone(m["tz"])
    hour, minute = hour24(int(m["h"]), m["ap"]), int(m["m"] or 0)
    month = month_number(m["mon"]) if m["mon"] else None
    if month:
        return wall_date(now, month, int(m["day"]), hour, minute, tz=tz)
    return next_wall_clock(now, hour, minute, tz)


def codex_reset(text: str, now: datetime) -> float | None:
    """"try again at 3:25 AM." (local time, today or tomorrow) or
    "try again at Jan 1st, 2030 12:00 AM." (local time)."""
    m = _CODEX_RESET.search(text)
    if not m:
        return None
    hour, minute = hour24(int(m["h"]), m["ap"]), int(m["m"])
    month = month_number(m["mon"]) if m["mon"] else None
    if month:
        return wall_date(now, month, int(m["day"]), hour, minute, year=int(m["year"]))
    return next_wall_clock(now, hour, minute)


def retry_in(text: str, now: datetime) -> float | None:
    """"Please retry in 9h41m12.3s." relative to ``now``."""
    m = _RETRY_IN.search(text)
    seconds = parse_duration(m.group(1)) if m else None
    return None if seconds is None else now.timestamp() + seconds


def any_reset(text: str, now: datetime) -> float | None:
    """Whichever of the known reset phrasings ``text`` holds."""
    for reader in (claude_reset, codex_reset, retry_in):
        found = reader(text, now)
        if found is not None:
            return found
    return None


#: Words that mark an error text as a rate or usage limit (for wrappers that
#: only pass the text on). "quota" alone is not enough: billing says it too.
RATE_LIMIT_TEXT = re.compile(
    r"rate[ _-]?limit|usage[ _-]?limit|too many requests|\b429\b|throttl|resource_exhausted"
    r"|exhausted your .{0,20}quota|hit your .{0,30}limit|retry in \d",
    re.IGNORECASE,
)
#: A billing problem: waiting will not fix it. (Gemini's free-tier daily quota
#: also says "check your plan and billing details" but is a limit that resets,
#: so the gemini parser does not use this.)
BILLING_TEXT = re.compile(
    r"insufficient_quota|quota exceeded\. check your plan and billing|credit balance is too low",
    re.IGNORECASE,
)


def with_reset(reason: str, reset_at: float | None, now: datetime) -> str:
    """``reason`` plus "; resets 03:25" (local time; with the date when not
    today) when the reset time is known."""
    if reset_at is None:
        return reason
    when = datetime.fromtimestamp(reset_at).astimezone()
    same_day = when.date() == now.astimezone().date()
    return reason.rstrip(" .") + "; resets " + when.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
