"""Helpers shared by the backend modules.

* :class:`LineParser`, the base of every output parser: it cleans each line
  the pty hands over and makes sure no exception ever escapes, because a parser
  bug must cost one verdict, never the whole run. It never hides one either:
  the errors are in the verdict's ``longrepr``, and a verdict they may have
  made wrong is a BACKEND_ERROR. It also gives every verdict the CLI's
  ``session_id``;
* small builders for the invocations (where a prompt may go, the executable);
* reset-time arithmetic for the rate-limit texts the CLIs print ("resets
  4:10am (UTC)", "try again at 3:25 AM", "Please retry in 9h41m12.3s",
  ``retry-after``).
"""
from __future__ import annotations

import re
import traceback
from dataclasses import replace
from datetime import datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from seqrun.backends.base import MAX_ARGV_PROMPT, AgentCall, strip_ansi
from seqrun.outcome import Kind, Outcome, Usage, Verdict

#: Longest text a parser keeps (a final message, an error). The tail is kept:
#: that is where the marker is.
MAX_KEPT_CHARS = 1_000_000


def clip(text: str, limit: int = MAX_KEPT_CHARS) -> str:
    return text if len(text) <= limit else text[-limit:]


class TailLines:
    """The last lines of a block of text, within :data:`MAX_KEPT_CHARS`: an
    agent may print without end, a parser keeps a bounded tail.

    Called for every line of output: old lines are dropped in batches (when
    twice the limit is held), not one by one.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.chars = 0

    def append(self, line: str) -> None:
        if len(line) > MAX_KEPT_CHARS:
            line = line[-MAX_KEPT_CHARS:]
        self.lines.append(line)
        self.chars += len(line) + 1
        if self.chars > 2 * MAX_KEPT_CHARS:
            self._trim()

    def _trim(self) -> None:
        drop, chars = 0, self.chars
        while chars > MAX_KEPT_CHARS and drop < len(self.lines) - 1:
            chars -= len(self.lines[drop]) + 1
            drop += 1
        del self.lines[:drop]
        self.chars = chars

    def drop_last(self, count: int) -> None:
        for _ in range(min(count, len(self.lines))):
            self.chars -= len(self.lines.pop()) + 1

    def clear(self) -> None:
        self.lines.clear()
        self.chars = 0

    def text(self) -> str:
        self._trim()
        return "\n".join(self.lines)

    def __len__(self) -> int:
        return len(self.lines)


def clean_line(line: str) -> str:
    """A pty line as a person would read it: no line ending, no colour codes,
    and only what the last carriage return left visible (spinners redraw a
    line with ``\\r``)."""
    text = line.rstrip("\r\n")
    if "\r" in text:
        tail = text.rsplit("\r", 1)[1]
        text = tail if tail.strip() else text.replace("\r", "")
    return strip_ansi(text)


def one_line(text: str, limit: int = 300) -> str:
    """A reason-sized version of an error text."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


#: How many parse errors a parser keeps: the first ones say what broke, the
#: rest are usually the same error again.
MAX_PARSE_ERRORS = 5

#: Outcomes a parse error cannot have made wrong: each needs a signal the
#: parser did read (a marker in the final message, the CLI's limit error).
_TRUSTED_OUTCOMES = frozenset({Outcome.PASSED, Outcome.HALTED, Outcome.RATE_LIMITED})


class LineParser:
    """Base class of the output parsers.

    Subclasses implement :meth:`_feed` (one cleaned line, plus the raw one for
    the rare parser that needs colour codes as structure) and :meth:`_finish`,
    and set :attr:`session_id` when the CLI's output names its session.
    """

    #: The CLI's own session id, the first one its output named.
    session_id: str | None = None
    #: How many parse errors were not kept (beyond :data:`MAX_PARSE_ERRORS`).
    parse_errors_dropped: int = 0
    parse_errors: list[str]
    """What :meth:`_feed` raised, as "TypeError: … (line '…' at claude.py:87)"."""

    def __new__(cls, *args: object, **kwargs: object) -> LineParser:
        # Here, not in __init__: a subclass (a plugin's too) need not call
        # super().__init__() for its parser to work.
        self = super().__new__(cls)
        self.parse_errors = []
        return self

    def feed_line(self, line: str) -> None:
        try:
            self._feed(clean_line(line), line.rstrip("\r\n"))
        except Exception as exc:  # noqa: BLE001 - a malformed line must never stop a run
            self._parse_error(exc, line)

    def _parse_error(self, exc: Exception, line: str) -> None:
        """Keep what went wrong, never raising: this runs inside ``except``.

        The line is named by its start, not its number: counting lines would
        cost every line, and an error is rare.
        """
        if len(self.parse_errors) >= MAX_PARSE_ERRORS:
            self.parse_errors_dropped += 1
            return
        try:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            at = f" at {Path(where.filename).name}:{where.lineno}"
        except Exception:  # noqa: BLE001
            at = ""
        try:
            self.parse_errors.append(f"{describe(exc)} (line {one_line(clean_line(line), 80)!r}{at})")
        except Exception:  # noqa: BLE001 - an unprintable line or exception
            self.parse_errors.append(f"{type(exc).__name__}{at}")

    def finish(self, exit_status: int, now: datetime | None = None) -> Verdict:
        try:
            verdict = self._finish(exit_status, aware_now(now))
        except Exception as exc:  # noqa: BLE001 - same: report, don't raise
            verdict = Verdict(
                Outcome.FAILED,
                f"could not read the agent output: {describe(exc)}",
                kind=Kind.BACKEND_ERROR,
                longrepr="".join(traceback.format_exception(exc))[-4000:],
            )
        if not isinstance(verdict, Verdict):  # a plugin's parser bug: still one verdict, not a crash
            verdict = Verdict(Outcome.FAILED, f"the output parser returned {type(verdict).__name__}, not a Verdict",
                              kind=Kind.BACKEND_ERROR)
        if self.parse_errors:
            verdict = self._with_parse_errors(verdict)
        if verdict.session_id is None and self.session_id:
            verdict = replace(verdict, session_id=self.session_id)
        return verdict

    def _with_parse_errors(self, verdict: Verdict) -> Verdict:
        """The verdict with the parse errors in its ``longrepr``; a BACKEND_ERROR
        unless its outcome rests on something the parser did read."""
        lines = ["the parser could not read some of the agent output:", *(f"  {e}" for e in self.parse_errors)]
        if self.parse_errors_dropped:
            lines.append(f"  … and {self.parse_errors_dropped} more")
        text = "\n".join(lines)
        longrepr = f"{verdict.longrepr}\n\n{text}" if verdict.longrepr else text
        if verdict.outcome in _TRUSTED_OUTCOMES:
            return replace(verdict, longrepr=longrepr)
        return replace(verdict, kind=Kind.BACKEND_ERROR, longrepr=longrepr)

    def _feed(self, text: str, raw: str) -> None:
        raise NotImplementedError

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        raise NotImplementedError


def describe(exc: BaseException) -> str:
    """"TypeError: message", on one line (never raising: it runs in ``except``)."""
    try:
        text = one_line(str(exc), 200)
    except Exception:  # noqa: BLE001 - an exception whose str() fails
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exit_failure(exit_status: int, message: str | None = None, usage: Usage | None = None) -> Verdict:
    """A run whose process failed: whatever the message says, it did not end cleanly."""
    return Verdict(Outcome.FAILED, f"exit status {exit_status}", message, usage=usage)


def as_int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def as_float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


# -- invocations --------------------------------------------------------------


def executable(call: AgentCall, default: str) -> str:
    """The program to run: ``executable`` in the backend's options (an install
    outside PATH), else the CLI's usual name."""
    value = call.options.get("executable")
    return value if isinstance(value, str) and value else default


def fits_on_argv(prompt: str) -> bool:
    """Whether the prompt may be one argv element.

    Not when it is large (ARG_MAX is shared with the environment), holds a NUL
    (argv cannot), or starts with ``-`` (the CLI would read it as an option).
    """
    return len(prompt.encode("utf-8", "surrogatepass")) <= MAX_ARGV_PROMPT and "\0" not in prompt and not prompt.startswith("-")


def pointer_prompt(prompt_file: Path) -> str:
    """What goes on argv instead of a prompt too large for it."""
    return (
        f"Your task is written in the file {prompt_file} (it is also on standard input when "
        "the tool reads it). Read the whole file first and follow it exactly, including how to "
        "end your final message."
    )


# -- reset times ----------------------------------------------------------------


def aware_now(now: datetime | None) -> datetime:
    """``now`` as an aware datetime; a naive one is local time."""
    if now is None:
        return datetime.now().astimezone()
    return now if now.tzinfo is not None else now.astimezone()


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
