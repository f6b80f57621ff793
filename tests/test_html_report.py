"""``--html PATH``: the self-contained HTML report of a run, read as a file
and loaded in a real headless Chromium (skipped without one)."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import seqrun_env, use_command_agent

SPECS = Path(".kiro") / "specs"
SCRIPT_TITLE = '<script>document.title="pwned";document.body.appendChild(document.createElement("blink"))</script>'
TASKS = f"""\
- [ ] 1. Passes first time
  - _Requirements: 1.1, 2.3_
- [ ] 2. Flaky then fine
- [ ] 3. Always broken
- [ ] 4. Limited by the provider
- [ ] 5. Parent
  - [ ] 5.1 {SCRIPT_TITLE}
- [ ] 6. Never reached
"""
#: Fake claude scenarios per task: passed; failed then passed (a rerun); failed
#: twice; rate limited then passed; halted (which stops the run before 6).
SCRIPT = {"1": "done", "2": ["failed", "done"], "3": "failed", "4": ["rate_limited", "done"],
          "5.1": "halt", "*": "done"}
#: Agent runs per task of that script with --reruns 1.
ATTEMPTS = {"1": 1, "2": 2, "3": 2, "4": 2, "5.1": 1, "6": 0}


class Page(HTMLParser):
    """The elements of a report that the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, str | None]] = []
        self.bars: list[str] = []
        self.waits: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.titles: list[str] = []
        self.tags: set[str] = set()
        self._title: list[str] | None = None
        self.meta_csp: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        css = (a.get("class") or "").split()
        if tag == "section" and "task" in css:
            self.sections.append(a)
        if tag == "rect" and "bar" in css:
            self.bars.append(" ".join(css))
        if tag == "rect" and "wait" in css:
            self.waits.append(" ".join(css))
        for name in ("href", "src"):
            if a.get(name):
                self.links.append((name, a[name] or ""))
        if tag == "span" and "task-title" in css:
            self._title = []
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.meta_csp = a.get("content")

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._title is not None:
            self.titles.append("".join(self._title))
            self._title = None


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project after a real run (the fake claude CLI) of every kind of task."""
    project = tmp_path_factory.mktemp("night")
    (project / SPECS / "feature").mkdir(parents=True)
    (project / SPECS / "feature" / "tasks.md").write_text(TASKS, encoding="utf-8")
    (project / "script.json").write_text(json.dumps(SCRIPT), encoding="utf-8")
    (project / "out").mkdir()
    env = seqrun_env({"SEQRUN_FAKE_SCRIPT": str(project / "script.json"), "SEQRUN_FAKE_RESET_IN": "1",
                      "SEQRUN_FAKE_LOG": str(project / "calls.jsonl")}, fakes=True)
    result = subprocess.run(
        [sys.executable, "-m", "seqrun", "--no-tmux", "--delay", "0", "--backend", "claude", "--reruns", "1",
         "--rate-limit-margin", "0", "--html", "out/report.html", "--report-log", "log.jsonl"],
        cwd=project, env=env, text=True, capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stdout + result.stderr  # halted by 5.1
    assert "generated html report: " in result.stdout
    return project


def report_of(project: Path) -> str:
    return (project / "out" / "report.html").read_text(encoding="utf-8")


def test_every_task_has_a_section_and_every_attempt_a_bar(night):
    page = parse(report_of(night))
    assert [s["data-nodeid"] for s in page.sections] == [f".kiro/specs/feature::{i}" for i in ATTEMPTS]
    outcomes = {s["data-nodeid"].rsplit("::", 1)[1]: s["class"] for s in page.sections}
    assert outcomes == {"1": "task o-passed", "2": "task o-passed", "3": "task o-failed",
                        "4": "task o-passed", "5.1": "task o-halted", "6": "task o-skipped"}
    assert len(page.bars) == sum(ATTEMPTS.values()) == 8
    assert sorted(page.bars).count("bar o-failed") == 3  # 2's first, 3's two
    assert page.bars.count("bar o-rate_limited") == 1
    assert "wait w-rate-limit" in page.waits


def test_a_script_title_is_text(night):
    html = report_of(night)
    assert SCRIPT_TITLE not in html
    assert "&lt;script&gt;document.title=&#34;pwned&#34;" in html
    assert SCRIPT_TITLE in parse(html).titles


def test_logs_are_linked_relative_to_the_report_and_nothing_is_fetched(night):
    html = report_of(night)
    page = parse(html)
    logs = [href for name, href in page.links if href.endswith(".log")]
    assert len(logs) == 8
    for href in logs:
        assert not os.path.isabs(href) and href.startswith("../.kiro/specs/.seqrun/logs/feature/"), href
        assert (night / "out" / href).is_file()
    assert not [link for link in page.links if re.match(r"(?i)\s*(https?:)?//", link[1])]
    assert not re.search(r"(?i)url\(\s*['\"]?(https?:)?//|@import", html)
    assert page.meta_csp is not None and "default-src 'none'" in page.meta_csp
    assert len(html.encode()) < 200_000


def test_status_regenerates_the_report_without_running_anything(night, tmp_path):
    calls = (night / "calls.jsonl").read_text()
    target = tmp_path / "again.html"
    env = seqrun_env(fakes=True)
    result = subprocess.run([sys.executable, "-m", "seqrun", "--status", "--html", str(target)],
                            cwd=night, env=env, text=True, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"html report: {target}" in result.stdout
    assert (night / "calls.jsonl").read_text() == calls
    page = parse(target.read_text(encoding="utf-8"))
    assert len(page.sections) == 6 and len(page.bars) == 8
    # From the state file alone the run's command line is not known; with its report log it is.
    assert "not recorded" in target.read_text(encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "seqrun", "--status", "--html", str(target),
                             "--report-log", "log.jsonl"],
                            cwd=night, env=env, text=True, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    html = target.read_text(encoding="utf-8")
    assert "seqrun --no-tmux --delay 0 --backend claude --reruns 1" in html
    assert "Added the greeting line to README.md" in html  # the final message, from the report log


AGENT = """\
import shutil, sys
if sys.argv[1] == "2":
    shutil.copy("night.html", "seen-during-the-run.html")
print("<promise>TASK_DONE</promise>")
"""


def test_the_config_key_writes_the_report_after_each_task(project, make_spec, run_seqrun):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    use_command_agent(project, AGENT, "{task_id}", toml_top='html = "night.html"')
    result = run_seqrun("--backend", "command", "--delay", "0", "--no-tmux")
    assert result.returncode == 0, result.stdout + result.stderr
    during = parse((project / "seen-during-the-run.html").read_text(encoding="utf-8"))
    assert [s["class"] for s in during.sections] == ["task o-passed", "task o-not_run"]
    assert during.bars == ["bar o-passed"]
    after = parse((project / "night.html").read_text(encoding="utf-8"))
    assert [s["class"] for s in after.sections] == ["task o-passed", "task o-passed"]
    assert len(after.bars) == 2


def test_a_report_in_a_missing_folder_is_a_usage_error(project, make_spec, run_seqrun):
    make_spec("- [ ] 1. First\n")
    use_command_agent(project, "open('ran', 'w')\n")
    result = run_seqrun("--backend", "command", "--no-tmux", "--html", "no/such/folder/r.html")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "cannot write --html no/such/folder/r.html" in result.stderr, result.stderr
    assert not (project / "ran").exists()


# -- in a real browser ------------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)")


class Listener:
    """A TCP port that counts the connections made to it (the browser's proxy)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def browse(report: Path, tmp_path: Path, *args: str, fragment: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000", *args,
         report.as_uri() + fragment],
        text=True, capture_output=True, timeout=90, cwd=tmp_path, stdin=subprocess.DEVNULL)


def dump_dom(report: Path, tmp_path: Path, fragment: str = "", *args: str) -> Page:
    result = browse(report, tmp_path, "--dump-dom", *args, fragment=fragment)
    assert "<section" in result.stdout, result.stderr[-2000:]
    page = parse(result.stdout)
    page.raw = result.stdout  # type: ignore[attr-defined]
    return page


def shown(page: Page) -> list[str]:
    return [s["data-nodeid"].rsplit("::", 1)[1] for s in page.sections if "hidden" not in s]


def test_in_chromium_every_task_and_bar_is_there_and_nothing_is_fetched(night, tmp_path):
    proxy = Listener()
    page = dump_dom(night / "out" / "report.html", tmp_path, "",
                    f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
                    "--host-resolver-rules=MAP * ~NOTFOUND")
    assert shown(page) == list(ATTEMPTS)
    assert len(page.bars) == 8
    assert proxy.connections == 0


def test_in_chromium_the_failed_filter_and_the_search(night, tmp_path):
    report = night / "out" / "report.html"
    assert shown(dump_dom(report, tmp_path, "#failed")) == ["3", "5.1"]
    assert shown(dump_dom(report, tmp_path, "#q=" + quote("limited by the"))) == ["4"]
    assert shown(dump_dom(report, tmp_path, "#failed&q=broken")) == ["3"]


def test_in_chromium_a_script_title_does_not_run(night, tmp_path):
    page = dump_dom(night / "out" / "report.html", tmp_path)
    raw = page.raw  # type: ignore[attr-defined]
    assert re.search(r"<title>seqrun report: [^<]*</title>", raw) and "pwned" not in raw.split("</title>")[0]
    assert "blink" not in page.tags
    assert SCRIPT_TITLE in page.titles


def png_colours(data: bytes) -> int:
    """Distinct colours of an 8-bit RGB(A) PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    previous, colours = bytearray(stride), set()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 4))
        previous = line
    return len(colours)


def test_in_chromium_the_screenshot_is_not_blank(night, tmp_path):
    result = browse(night / "out" / "report.html", tmp_path, "--window-size=1000,900",
                    f"--screenshot={tmp_path / 'shot.png'}")
    shot = tmp_path / "shot.png"
    assert shot.is_file(), result.stderr[-2000:]
    assert png_colours(shot.read_bytes()) > 20


WRITES_A_FILE = """\
import sys
open("hello-" + sys.argv[1] + ".txt", "w").write("hello <b>world</b>\\n")
print("<promise>TASK_DONE</promise>")
"""


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_with_git_commit_each_task_shows_its_commit_and_the_report_is_not_committed(project, make_spec,
                                                                                     run_seqrun):
    make_spec("- [ ] 1. Say hello\n- [ ] 2. Say it again\n")
    use_command_agent(project, WRITES_A_FILE, "{task_id}")
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "seqrun@example.com"],
                 ["config", "user.name", "seqrun tests"], ["config", "commit.gpgsign", "false"],
                 ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
    result = run_seqrun("--backend", "command", "--delay", "0", "--no-tmux", "--git-commit", "--html", "r.html")
    assert result.returncode == 0, result.stdout + result.stderr
    committed = subprocess.run(["git", "show", "--name-only", "--format=", "HEAD"], cwd=project, text=True,
                               capture_output=True, check=True).stdout.split()
    assert "hello-2.txt" in committed and "r.html" not in committed  # written after task 1
    html = (project / "r.html").read_text(encoding="utf-8")
    assert re.search(r'<pre class="diffstat">[0-9a-f]{40} seqrun: feature 1 Say hello\n', html)
    assert re.search(r"^ hello-1.txt +\| 1 \+$", html, re.M)
    assert "+hello &lt;b&gt;world&lt;/b&gt;" in html


PASSES_THE_SECOND_NIGHT = """\
import os
if os.path.exists("second-night"):
    print("<promise>TASK_DONE</promise>")
else:
    print("not done yet")
"""


def test_the_timeline_is_of_the_last_run_and_each_task_lists_every_attempt(project, make_spec, run_seqrun):
    make_spec("- [ ] 1. Takes two nights\n")
    use_command_agent(project, PASSES_THE_SECOND_NIGHT)
    first = run_seqrun("--backend", "command", "--delay", "0", "--no-tmux", "--reruns", "0")
    assert first.returncode == 1, first.stdout + first.stderr
    (project / "second-night").touch()
    second = run_seqrun("--backend", "command", "--delay", "0", "--no-tmux", "--html", "tonight.html")
    assert second.returncode == 0, second.stdout + second.stderr
    for html in ((project / "tonight.html").read_text(encoding="utf-8"),
                 (run_seqrun("--status", "--html", "again.html"), (project / "again.html").read_text())[1]):
        assert parse(html).bars == ["bar o-passed"]
        assert re.search(r"Attempt 1: <span class=\"badge o-failed\">failed \[no-marker\]", html)
        assert re.search(r"Attempt 2: <span class=\"badge o-passed\">passed<", html)
