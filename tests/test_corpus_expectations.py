"""Hand-checked expectations for real task lists (tests/data/corpus/).

Every expectation below was written by reading the corpus file and applying the
collection rules by hand (mode, ids, nesting by id, duplicates, optional
markers, metadata) -- never by printing what the collector produces.  The files
are byte-for-byte copies of real files from public repositories (the project's
shared corpus, and those listed with their provenance in tests/data/corpus/SOURCES.md),
plus two small hand-made files: ``seed_format.md`` (the seed script's plain
numbered format) and ``speckit_depends.md`` (spec-kit ``(depends on T003)``).

Conventions used by the tables:

* one row per task, in file (= ``Spec.iter_tasks()``) order:
  ``id | parent id ("-" for a root) | state``
* state codes: ``p`` pending, ``x`` done, ``-`` in progress, ``?`` not checked
  (used for GROUP headings, whose state the rules do not define); a trailing
  ``*`` means the task is optional;
* a task written without an id gets a generated ``h`` + sha1 id; tables name it
  ``h:<title>`` instead of hard-coding the hash, and the id itself is checked
  against ``^h[0-9a-f]{6}(~\\d+)?$``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqrun.kiro import collect_text
from seqrun.nodes import Spec, Task, TaskKind, TaskState

DATA = Path(__file__).parent / "data" / "corpus"
GEN_RE = re.compile(r"^h[0-9a-f]{6}(~\d+)?$")

P, X, IP = TaskState.PENDING, TaskState.DONE, TaskState.IN_PROGRESS
CHECKBOX, HEADING, NUMBERED, GROUP = (
    TaskKind.CHECKBOX,
    TaskKind.HEADING,
    TaskKind.NUMBERED,
    TaskKind.GROUP,
)


class _Any:
    """Matches anything (used where the rules do not say what to expect)."""

    def __eq__(self, other: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
_STATES = {"p": P, "x": X, "-": IP, "?": ANY}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

_CACHE: dict[str, Spec] = {}


def load(name: str) -> Spec:
    """Collect a corpus file.  The text is decoded from the raw bytes so CRLF
    files reach the collector with their ``\\r\\n`` intact (``read_text`` would
    translate them away)."""
    if name not in _CACHE:
        path = DATA / name
        _CACHE[name] = collect_text(path.read_bytes().decode("utf-8"), path)
    return _CACHE[name]


def key(task: Task | None) -> str | None:
    if task is None:
        return None
    if GEN_RE.match(task.id):
        return "h:" + task.title
    return task.id


def actual_rows(spec: Spec) -> list[tuple]:
    return [(key(t), key(t.parent), t.state, t.optional) for t in spec.iter_tasks()]


def table(text: str) -> list[tuple]:
    rows = []
    for raw in text.strip().splitlines():
        if not raw.strip():
            continue
        tid, parent, st = (c.strip() for c in raw.split("|"))
        optional = st.endswith("*")
        rows.append((tid, None if parent == "-" else parent, _STATES[st.rstrip("*")], optional))
    return rows


def row(tid: str, parent: str | None, st: str) -> tuple:
    return (tid, parent, _STATES[st.rstrip("*")], st.endswith("*"))


def by_key(spec: Spec) -> dict[str, Task]:
    out: dict[str, Task] = {}
    for t in spec.iter_tasks():
        out.setdefault(key(t), t)
    return out


def check_attrs(spec: Spec, expected: dict[str, dict]) -> None:
    """Compare selected attributes; report every mismatch at once.

    Pseudo-attributes: ``fields`` (the given keys must have these values),
    ``fields_absent`` (keys that must not be present), ``title_norm`` (title with
    runs of whitespace collapsed), ``title_start``/``title_end``,
    ``depends_has`` (ids that must be among ``depends``), ``req_has``,
    ``details_has`` (a substring of ``details``)."""
    tasks = by_key(spec)
    problems = []
    for k, attrs in expected.items():
        t = tasks.get(k)
        if t is None:
            problems.append(f"{k}: no such task")
            continue
        for attr, want in attrs.items():
            if attr == "fields":
                for fk, fv in want.items():
                    got = t.fields.get(fk, "<missing>")
                    if got != fv:
                        problems.append(f"{k}.fields[{fk!r}]: expected {fv!r}, got {got!r}")
                continue
            if attr == "fields_absent":
                for fk in want:
                    if fk in t.fields:
                        problems.append(f"{k}.fields: {fk!r} should be absent, got {t.fields[fk]!r}")
                continue
            if attr == "title_norm":
                got = " ".join(t.title.split())
            elif attr == "title_start":
                got = t.title[: len(want)]
            elif attr == "title_end":
                got = t.title[-len(want):]
            elif attr == "depends_has":
                missing = [d for d in want if d not in t.depends]
                if missing:
                    problems.append(f"{k}.depends: {missing!r} missing from {t.depends!r}")
                continue
            elif attr == "details_has":
                if want not in t.details:
                    problems.append(f"{k}.details: {want!r} not in {t.details!r}")
                continue
            elif attr == "req_has":
                missing = [d for d in want if d not in t.requirements]
                if missing:
                    problems.append(f"{k}.requirements: {missing!r} missing from {t.requirements!r}")
                continue
            elif attr == "parent":
                got = key(t.parent)
            else:
                got = getattr(t, attr)
            if got != want:
                problems.append(f"{k}.{attr}: expected {want!r}, got {got!r}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# per-file expectations: tree table, counts, warnings, kinds
# --------------------------------------------------------------------------

CASES: dict[str, dict] = {}


def case(name: str, rows: list[tuple], *, roots: int, leaves: int, warnings: int = 0,
         warning_lines: list[int] | None = None, kind: TaskKind = CHECKBOX,
         groups: tuple[str, ...] = ()) -> None:
    CASES[name] = dict(rows=rows, roots=roots, leaves=leaves, warnings=warnings,
                       warning_lines=warning_lines, kind=kind, groups=groups)


# --- LuChangQiu 119: tiny, Chinese, id-less tasks --------------------------
LUCHANG_119 = "LuChangQiu__kiro-spec-engine__119-00-steering-self-governance__tasks.md"
case(LUCHANG_119, table("""
h:定义 steering 自治理目标与治理边界 | - | x
h:在 steering manifest 中加入治理预算与规范术语 | - | x
h:实现 steering 内容审计脚本 | - | x
h:为审计脚本补充单元测试 | - | x
h:收缩并修订当前 steering 基线内容 | - | x
h:同步收缩模板 steering 内容 | - | x
h:补充 steering 详细治理文档 | - | x
h:接入常规 CI 与定时工作流 | - | x
"""), roots=8, leaves=8)

# --- Linkshield: numbered mode, "1) Title", no final newline ---------------
LINKSHIELD = "freelancing-solutions__Linkshield__email-verification__tasks.md"
case(LINKSHIELD, table("""
1 | - | p
2 | - | p
3 | - | p
4 | - | p
5 | - | p
"""), roots=5, leaves=5, kind=NUMBERED)

# --- autonomous-mcp-flows: checkboxes without bullet, **T1.1**, T5.1a ------
MCP_FLOWS = "JoseETeixeira__KiroVSCode__autonomous-mcp-flows__tasks.md"
case(MCP_FLOWS, table("""
T1.1 | - | x
T1.2 | - | x
T1.3 | - | x
T1.4 | - | x
T2.1 | - | x
T2.2 | - | x
T2.3 | - | x
T3.1 | - | x
T3.2 | - | x
T4.1 | - | x
T4.2 | - | x
T5.1 | - | x
T5.1a | - | x
T5.2 | - | x
T6.1 | - | x
T6.2 | - | p
T7.1 | - | p
T7.2 | - | p
T7.3 | - | p
T7.4 | - | p
"""), roots=20, leaves=20)

# --- genre-icons: [/] state, cc-sdd flat layout, (P), _Boundary:_ ----------
GENRE = "npressoworks__quizeum__genre-icons__tasks.md"
case(GENRE, table("""
1 | - | -
1.1 | 1 | x
2 | - | p
2.1 | 2 | x
2.2 | 2 | x
2.3 | 2 | x
3 | - | p
3.1 | 3 | x
4 | - | p
4.1 | 4 | x
4.2 | 4 | p
"""), roots=4, leaves=7)

# --- admin-users-ui: "### 1. Foundation" group headings, _Depends:_ --------
ADMIN_UI = "npressoworks__quizeum__quizeum-admin-users-ui__tasks.md"
case(ADMIN_UI, table("""
1 | - | ?
1.1 | 1 | x
1.2 | 1 | x
1.3 | 1 | x
1.4 | 1 | x
2 | - | ?
2.1 | 2 | x
2.2 | 2 | x
2.3 | 2 | x
2.4 | 2 | x
3 | - | ?
3.1 | 3 | x
3.2 | 3 | x
3.3 | 3 | x
3.4 | 3 | x
3.5 | 3 | x
4 | - | ?
4.1 | 4 | x
4.2 | 4 | x
"""), roots=4, leaves=15, groups=("1", "2", "3", "4"))

# --- sopequenoteck: French spec-kit, [US1+US2], **[P]** legend -------------
KBUDGET = "sopequenoteck__kbudget__009-transaction-form__tasks.md"
case(KBUDGET, [row(f"T{n:03d}", None, "x") for n in range(1, 11)], roots=10, leaves=10)

# --- KlausMebus: TAB-indented subtasks, numbering restarts per phase -------
KLAUS = "KlausMebus__CopilotPrompts__docs__tasklist-0001.md"
case(KLAUS, table("""
1 | - | p
1.1 | 1 | p
1.2 | 1 | p
1.3 | 1 | p
1.4 | 1 | p
2 | - | p
2.1 | 2 | p
2.2 | 2 | p
2.3 | 2 | p
2.4 | 2 | p
3 | - | p
3.1 | 3 | p
3.2 | 3 | p
3.3 | 3 | p
3.4 | 3 | p
3.5 | 3 | p
4 | - | p
4.1 | 4 | p
4.2 | 4 | p
4.3 | 4 | p
4.4 | 4 | p
5 | - | p
5.1 | 5 | p
5.2 | 5 | p
5.3 | 5 | p
1~2 | - | p
1.1~2 | 1~2 | p
1.2~2 | 1~2 | p
1.3~2 | 1~2 | p
1.4~2 | 1~2 | p
2~2 | - | p
2.1~2 | 2~2 | p
2.2~2 | 2~2 | p
2.3~2 | 2~2 | p
2.4~2 | 2~2 | p
3~2 | - | p
3.1~2 | 3~2 | p
3.2~2 | 3~2 | p
3.3~2 | 3~2 | p
4~2 | - | p
4.1~2 | 4~2 | p
4.2~2 | 4~2 | p
1~3 | - | p
1.1~3 | 1~3 | p
1.2~3 | 1~3 | p
1.3~3 | 1~3 | p
1.4~3 | 1~3 | p
2~3 | - | p
2.1~3 | 2~3 | p
2.2~3 | 2~3 | p
2.3~3 | 2~3 | p
2.4~3 | 2~3 | p
3~3 | - | p
3.1~3 | 3~3 | p
3.2~3 | 3~3 | p
3.3~3 | 3~3 | p
4~3 | - | p
4.1~3 | 4~3 | p
4.2~3 | 4~3 | p
4.3~2 | 4~3 | p
5~2 | - | p
5.1~2 | 5~2 | p
5.2~2 | 5~2 | p
1~4 | - | p
1.1~4 | 1~4 | p
1.2~4 | 1~4 | p
1.3~4 | 1~4 | p
2~4 | - | p
2.1~4 | 2~4 | p
2.2~4 | 2~4 | p
2.3~4 | 2~4 | p
2.4~4 | 2~4 | p
3~4 | - | p
3.1~4 | 3~4 | p
3.2~4 | 3~4 | p
3.3~4 | 3~4 | p
4~4 | - | p
4.1~4 | 4~4 | p
4.2~4 | 4~4 | p
4.3~3 | 4~4 | p
1~5 | - | p
2~5 | - | p
3~5 | - | p
4~5 | - | p
5~3 | - | p
6 | - | p
"""), roots=24, leaves=68, warnings=60, warning_lines=[
    51, 52, 53, 54, 55, 57, 58, 59, 60, 61, 63, 64, 65, 66, 68, 69, 70,
    77, 78, 79, 80, 81, 83, 84, 85, 86, 87, 89, 90, 91, 92, 94, 95, 96, 97, 99, 100, 101,
    108, 109, 110, 111, 113, 114, 115, 116, 117, 119, 120, 121, 122, 124, 125, 126, 127,
    134, 135, 136, 137, 138,
])

# --- eunjeong0911: Korean, "## 1. 개발 환경 설정" group headings ------------
KOREAN = "eunjeong0911__WaterSportsReco__user-authentication__tasks.md"
_korean_children = {1: 3, 2: 2, 3: 4, 4: 4, 5: 3, 6: 3, 7: 3, 8: 3, 9: 3, 10: 3, 11: 3}
case(KOREAN, [
    r for g, n in _korean_children.items()
    for r in [row(str(g), None, "?")] + [row(f"{g}.{i}", str(g), "p") for i in range(1, n + 1)]
], roots=11, leaves=34, groups=tuple(str(g) for g in _korean_children))

# --- caraseli02 admin-order-management: [ ]\*, list restarting at 8 --------
ADMIN_ORDER = "caraseli02__MoldovaDirect__admin-order-management__tasks.md"
case(ADMIN_ORDER, table("""
1 | - | x
2 | - | x
3 | - | x
4 | - | x
5 | - | x
6 | - | x
7 | - | x
8 | - | x
8~2 | - | x
h:✅ Database schema exists (order_notes table) | 8~2 | x
h:✅ Notes fetched in order detail API | 8~2 | x
h:✅ Timeline component displays notes | 8~2 | x
h:❌ Create components/admin/Orders/NotesSection.vue for internal admin notes | 8~2 | p
h:❌ Build components/admin/Orders/NoteComposer.vue using shadcn-vue Textarea | 8~2 | p
h:❌ Create POST /api/admin/orders/[id]/notes.post.ts for adding admin notes | 8~2 | p
9 | - | x
h:✅ Create components/admin/Orders/FulfillmentChecklist.vue using shadcn-vue Checkbox components | 9 | x
h:✅ Build fulfillment task tracking with picking, packing, and shipping stages | 9 | x
h:✅ Integrate with existing inventory system to update stock when items are picked | 9 | x
h:✅ Add order_fulfillment_tasks table to database schema | 9 | x
h:✅ Create POST /api/admin/orders/[id]/fulfillment-tasks/index.post.ts | 9 | x
h:✅ Create PATCH /api/admin/orders/[id]/fulfillment-tasks/[taskId].patch.ts | 9 | x
h:✅ Create InitializeFulfillmentButton.vue component | 9 | x
10 | - | p*
11 | - | x
h:✅ Create components/admin/Orders/BulkActions.vue following adminProducts bulk pattern | 11 | x
h:✅ Build bulk status update with shadcn-vue Dialog for confirmation | 11 | x
h:✅ Implement bulk operation state management in store | 11 | x
h:✅ Create POST /api/admin/orders/bulk.post.ts for bulk status updates | 11 | x
h:✅ Add error handling and summary reporting with toast notifications | 11 | x
h:✅ Status transition validation | 11 | x
12 | - | x
h:✅ Create GET /api/admin/orders/analytics.get.ts with comprehensive metrics | 12 | x
h:✅ Revenue, fulfillment rate, and time series data | 12 | x
h:✅ Status and payment method breakdowns | 12 | x
h:❌ Implement pages/admin/orders/analytics.vue (currently empty file) | 12 | p
h:❌ Build components/admin/Orders/Analytics/MetricsCards.vue for key metrics | 12 | p
h:❌ Implement date range filtering using existing filter patterns | 12 | p
h:❌ Add CSV export functionality for order reports | 12 | p
13 | - | x
h:✅ Created composables/useAdminOrderRealtime.ts file | 13 | x
h:❌ Implement Supabase Realtime subscriptions for order status changes | 13 | p
h:❌ Use existing toast store for order change notifications | 13 | p
h:❌ Add optimistic locking with updated_at timestamp checks | 13 | p
h:❌ Display conflict warnings when order was modified by another admin | 13 | p
h:❌ Integrate with order list page (pages/admin/orders/index.vue) | 13 | p
h:❌ Integrate with order detail page (pages/admin/orders/[id].vue) | 13 | p
14 | - | p*
15 | - | p*
16 | - | x
h:✅ Create components/admin/Orders/Timeline.vue with status history and timestamps | 16 | x
h:✅ Display status changes, notes, and key events in chronological order | 16 | x
h:✅ Show admin user who made each change | 16 | x
h:✅ Integrated with order detail page | 16 | x
17 | - | p*
"""), roots=18, leaves=49, warnings=1, warning_lines=[69])

# --- lostguk: Russian, _Требования:_, [ ]*, no final newline ---------------
RUSSIAN = "lostguk__vedma__user-authentication__tasks.md"
_ru_children = {1: 2, 2: 4, 3: 1, 4: 5, 5: 2, 6: 1, 7: 2, 8: 2, 9: 2, 10: 3, 11: 2}
case(RUSSIAN, [
    r for g, n in _ru_children.items()
    for r in [row(str(g), None, "p")]
    + [row(f"{g}.{i}", str(g), "p*" if g == 10 else "p") for i in range(1, n + 1)]
], roots=11, leaves=26)

# --- matrix4033: CRLF + Chinese, _需求:_, runs of blank lines --------------
CRLF_ZH = "matrix4033__sjjt-dq__sankey-data-visualization__tasks.md"
case(CRLF_ZH, [row(str(n), None, "p" if n in (4, 11) else "x") for n in range(1, 12)],
     roots=11, leaves=11)

# --- FouadABT customer-account-management: [ ]*, [-], blank-line runs ------
FOUAD = "FouadABT__kiroween-dashtact__customer-account-management__tasks.md"
case(FOUAD, table("""
1 | - | x
1.1 | 1 | x
1.2 | 1 | x
1.3 | 1 | x
1.4 | 1 | x
1.5 | 1 | x
1.6 | 1 | p*
1.7 | 1 | x
2 | - | x
2.1 | 2 | x
2.2 | 2 | x
2.3 | 2 | x
2.4 | 2 | x
2.5 | 2 | x
2.6 | 2 | p*
2.7 | 2 | x
3 | - | p
3.1 | 3 | x
3.2 | 3 | x
3.3 | 3 | p
3.4 | 3 | p
3.5 | 3 | x
3.6 | 3 | p*
3.7 | 3 | p
4 | - | -
4.1 | 4 | x
4.2 | 4 | x
4.3 | 4 | p
4.4 | 4 | x
4.5 | 4 | x
4.6 | 4 | p*
4.7 | 4 | x
"""), roots=4, leaves=28)

# --- custom-chat-panel: Prettier "-   [ ]\*" ---------------------------------
CHAT_PANEL = "JoseETeixeira__KiroVSCode__custom-chat-panel__tasks.md"
_chat = {  # parent: (state, [child states])
    1: ("x", []),
    2: ("x", ["x", "x", "p*"]),
    3: ("x", ["x", "x", "p*"]),
    4: ("x", ["x", "x", "p*"]),
    5: ("x", ["x", "x", "p*"]),
    6: ("x", ["x", "x", "p*"]),
    7: ("x", ["x", "x", "x", "p*"]),
    8: ("x", ["x", "x", "x", "x", "p*"]),
    9: ("x", ["x", "x", "p*"]),
    10: ("x", ["x", "x", "p*"]),
    11: ("p", ["p", "p", "p*"]),
    12: ("p", ["p", "p", "p*"]),
    13: ("p", ["p", "p", "p*"]),
    14: ("p", ["p", "p", "p*"]),
    15: ("p", ["p", "p", "p", "p*"]),
    16: ("p", ["p", "p", "p*"]),
    17: ("p", ["p", "p", "p*"]),
}
case(CHAT_PANEL, [
    r for g, (st, kids) in _chat.items()
    for r in [row(str(g), None, st)] + [row(f"{g}.{i}", str(g), s) for i, s in enumerate(kids, 1)]
], roots=17, leaves=53)

# --- llamojha rate-limiting: [x]\* and [ ]\* --------------------------------
RATE = "llamojha__no-vibe-no-code-kiroween__rate-limiting-free-users__tasks.md"
_rate = {
    1: 4, 2: 6, 3: 2, 4: 3, 5: 4, 6: 3, 7: 2, 8: 4, 9: 2, 10: 2, 11: 3, 12: 2,
    13: 4, 14: 1, 15: 1, 16: 4, 17: 2, 18: 1, 19: 3, 20: 3, 21: 4, 22: 4, 23: 2, 24: 3,
}


def _rate_state(g: int, child: bool) -> str:
    if g == 20:
        return "x*" if child else "x"
    if g >= 21:
        return "p*"
    return "x"


case(RATE, [
    r for g, n in _rate.items()
    for r in [row(str(g), None, _rate_state(g, False))]
    + [row(f"{g}.{i}", str(g), _rate_state(g, True)) for i in range(1, n + 1)]
], roots=24, leaves=69)

# --- WhitePlusMS: Chinese, same task line repeated with conflicting states --
WHITEPLUS = "WhitePlusMS__calenparse__calendar-enhancements__tasks.md"
case(WHITEPLUS, table("""
1 | - | x
2 | - | x
3 | - | x
3.1 | 3 | x
3.2 | 3 | p*
3.3 | 3 | p*
3.4 | 3 | p*
3.5 | 3 | p*
3.6 | 3 | p*
3.7 | 3 | p*
3.8 | 3 | p*
4 | - | x
4.1 | 4 | x
4.2 | 4 | p*
5 | - | x
6 | - | x
6~2 | - | p
7 | - | x
8 | - | -
8~2 | - | p
8.1 | 8~2 | x
8.2 | 8~2 | p*
8.3 | 8~2 | p*
8.4 | 8~2 | p*
8.5 | 8~2 | p*
8.6 | 8~2 | p*
8.7 | 8~2 | p*
8.8 | 8~2 | p*
9 | - | -
9.1 | 9 | x
9.2 | 9 | p*
10 | - | x
11 | - | p
12 | - | -
12.1 | 12 | x
12.2 | 12 | p*
12.3 | 12 | p*
12.4 | 12 | p*
13 | - | x
14 | - | x
14.1 | 14 | x
14.2 | 14 | p*
14.3 | 14 | p*
14.4 | 14 | p*
14.5 | 14 | p*
14.6 | 14 | p*
14.7 | 14 | p*
14.8 | 14 | p*
14.9 | 14 | p*
15 | - | x
15.1 | 15 | x
15.2 | 15 | p*
16 | - | x
16~2 | - | p
17 | - | x
18 | - | p
18.1 | 18 | p
18.2 | 18 | p*
19 | - | p
"""), roots=22, leaves=51, warnings=3, warning_lines=[95, 111, 284])

# --- LuChangQiu 01-00: trailing "KSE Status Markers" reuse ids 1-4 ---------
KSE = "LuChangQiu__kiro-spec-engine__01-00-npm-github-release-pipeline__tasks.md"
case(KSE, table("""
1 | - | x
2 | - | x
2.1 | 2 | x
2.2 | 2 | p*
3 | - | x
3.1 | 3 | x
3.2 | 3 | p*
3.3 | 3 | p*
3.4 | 3 | p*
4 | - | x
4.1 | 4 | x
4.2 | 4 | x
4.3 | 4 | p*
4.4 | 4 | p*
5 | - | x
6 | - | x
6.1 | 6 | x
6.2 | 6 | p*
6.3 | 6 | p*
7 | - | x
7.1 | 7 | x
7.2 | 7 | p*
8 | - | x
8.1 | 8 | x
8.2 | 8 | x
8.3 | 8 | p*
8.4 | 8 | p*
9 | - | x
10 | - | x
10.1 | 10 | x
10.2 | 10 | x
10.3 | 10 | p*
11 | - | x
11.1 | 11 | x
11.2 | 11 | x
11.3 | 11 | p*
12 | - | p
12.1 | 12 | p*
13 | - | p
13.1 | 13 | p*
14 | - | p
14.1 | 14 | p*
15 | - | x
15.1 | 15 | x
16 | - | x
17 | - | x
18 | - | x
19 | - | x
1~2 | - | x
2~2 | - | x
3~2 | - | x
4~2 | - | x
"""), roots=23, leaves=40, warnings=4, warning_lines=[301, 302, 303, 304])

# --- rongma1sheng: "#### 0.1" group headings, 3-level ids, code fence ------
RONGMA = "rongma1sheng__kiro-intelligent-dev-assistant__unified-bug-detection-system__tasks.md"
case(RONGMA, table("""
0.1 | - | ?
0.1.1 | 0.1 | x
0.1.2 | 0.1 | x
0.1.3 | 0.1 | x
0.2 | - | ?
0.2.1 | 0.2 | x
0.2.2 | 0.2 | x
0.3 | - | ?
0.3.1 | 0.3 | x
0.3.2 | 0.3 | x
1.1 | - | ?
1.1.1 | 1.1 | x
1.1.2 | 1.1 | p
1.2 | - | ?
1.2.1 | 1.2 | p
1.2.2 | 1.2 | p
1.2.3 | 1.2 | p
1.3 | - | ?
1.3.1 | 1.3 | p
1.3.2 | 1.3 | p
1.3.3 | 1.3 | p
2.1 | - | ?
2.1.1 | 2.1 | p
2.1.2 | 2.1 | p
2.1.3 | 2.1 | p
2.2 | - | ?
2.2.1 | 2.2 | p
2.2.2 | 2.2 | p
2.2.3 | 2.2 | p
2.3 | - | ?
2.3.1 | 2.3 | p
2.3.2 | 2.3 | p
2.3.3 | 2.3 | p
3.1 | - | ?
3.1.1 | 3.1 | p
3.1.2 | 3.1 | p
3.1.3 | 3.1 | p
3.2 | - | ?
3.2.1 | 3.2 | p
3.2.2 | 3.2 | p
3.2.3 | 3.2 | p
3.3 | - | ?
3.3.1 | 3.3 | p
3.3.2 | 3.3 | p
3.3.3 | 3.3 | p
4.1 | - | ?
4.1.1 | 4.1 | p
4.1.2 | 4.1 | p
4.2 | - | ?
4.2.1 | 4.2 | p
4.2.2 | 4.2 | p
h:精简的MCP配置：2个服务，权限优化 | - | x
h:简化的Steering配置：400行，核心功能保留 | - | x
h:配置优化报告：完整的分析和改进记录 | - | x
h:Bug检测引擎：基于现有quality_gate.py | - | p
h:团队分配系统：基于优化后的团队配置 | - | p
h:修复建议生成：标准化模板和格式 | - | p
h:单元测试覆盖率 100% | - | p
h:统一质量检查Hook：文件编辑触发 | - | p
h:统一Bug检测Hook：用户触发 | - | p
h:性能优化：缓存机制和增量检测 | - | p
h:错误处理：异常处理和日志记录 | - | p
h:完整的测试验证：单元、集成、用户验收 | - | p
h:性能基准达标：满足预期指标 | - | p
h:用户文档：使用指南和配置说明 | - | p
h:部署就绪：生产环境可用 | - | p
h:配置优化：Hook冲突消除，MCP配置精简，Steering配置简化 | - | x
h:Bug检测：基于现有系统的准确检测 | - | p
h:团队分配：准确率 ≥ 90% | - | p
h:修复建议：标准化格式，实用性强 | - | p
h:Hook集成：触发正常，无冲突 | - | p
h:Bug检测时间 ≤ 30秒 | - | p
h:团队分配时间 ≤ 5秒 | - | p
h:建议生成时间 ≤ 10秒 | - | p
h:配置加载时间减少 60% | - | x
h:单元测试覆盖率 100% | - | p
h:集成测试全部通过 | - | p
h:用户验收测试通过 | - | p
h:配置优化验证通过 | - | x
"""), roots=42, leaves=65, warnings=1, warning_lines=[335],
    groups=("0.1", "0.2", "0.3", "1.1", "1.2", "1.3", "2.1", "2.2", "2.3",
            "3.1", "3.2", "3.3", "4.1", "4.2"))

# --- nkllon beast-mode: **1.1 Title**, id-less bold tasks, ### groups -------
BEAST = "nkllon__kiro-ai-development-hackathon__beast-mode-self-refactoring__tasks.md"
case(BEAST, table("""
1 | - | ?
1.1 | 1 | p
1.2 | 1 | p
2 | - | ?
2.1 | 2 | p
2.2 | 2 | p
3 | - | ?
3.1 | 3 | p
3.2 | 3 | p
h:Agent 1: Enhance Ghostbusters Framework Multi-Agent Capabilities | - | p
h:Agent 2: Complete Ghostbusters Validation Framework | - | p
h:Agent 3: Implement Ghostbusters Expert Agents | - | p
h:Agent 4: Validate Domain Index Model System Integration | - | p
h:Daily Merge Coordination | - | p
h:Agent 1: Implement Systematic PDCA Orchestrator | - | p
h:Agent 2: Implement Tool Health Manager | - | p
h:Agent 3: Implement Systematic Metrics Engine | - | p
h:Agent 4: Implement Parallel DAG Orchestrator | - | p
h:Continuous Integration Testing | - | p
4.1 | - | p
4.2 | - | p
4.3 | - | p
4.4 | - | p
h:Bootstrap System Failure | - | p
h:Parallel Agent Conflicts | - | p
h:Migration Failures | - | p
h:Coordination Overhead Monitoring | - | p
h:Parallel Efficiency Monitoring | - | p
"""), roots=22, leaves=25, groups=("1", "2", "3"))

# --- crawlins transport-multi-serializer: 10a / 10a.1, continuation lines --
TRANSPORT = "crawlins__kythira__transport-multi-serializer__tasks.md"
case(TRANSPORT, table("""
1 | - | x
2 | - | x
3 | - | x
4 | - | x
5 | - | x
6 | - | x
7 | - | x
8 | - | x
9 | - | x
9.1 | 9 | x
9.2 | 9 | x
9.3 | 9 | x
9.4 | 9 | x
9.5 | 9 | x
9.6 | 9 | x
10 | - | x
10a | - | x
10a.1 | 10a | x
10a.2 | 10a | x
10a.3 | 10a | x
10a.4 | 10a | x
11 | - | x
11.1 | 11 | x
11.2 | 11 | x
11.3 | 11 | x
11.4 | 11 | x
11.5 | 11 | x
12 | - | x
13 | - | x
14 | - | x
15 | - | x
16 | - | x
"""), roots=17, leaves=29)

# --- crawlins raft-consensus: "303.1." ids with trailing dot ----------------
RAFT = "crawlins__kythira__raft-consensus__tasks.md"
_raft_roots = ([str(n) for n in range(300, 322)] + [str(n) for n in range(400, 413)]
               + [str(n) for n in range(500, 511)] + [str(n) for n in range(600, 613)]
               + ["700", "701", "702", "710", "711", "712", "713", "720", "721", "722",
                  "730", "731"])
case(RAFT, [
    r for tid in _raft_roots
    for r in [row(tid, None, "x")]
    + ([row(f"303.{i}", "303", "x") for i in (1, 2, 3)] if tid == "303" else [])
], roots=71, leaves=73)

# --- dougis 002-navigation: [X] and [x] mixed, ids out of order -------------
NAV = "dougis-org__dnd-tracker__002-navigation-not-implemented-page__tasks.md"
_nav = (
    [("T001", "x"), ("T002", "x"), ("T003", "x"), ("T051", "x")]
    + [(f"T{n:03d}", "x") for n in range(4, 10)]
    + [(f"T{n:03d}", "x") for n in range(28, 51)]
    + [("T100", "x"), ("T101", "x"), ("T102", "x"), ("T103", "x"), ("T104", "x"), ("T111", "x")]
    + [(f"T{n:03d}", "x") for n in range(105, 111)]
    + [(f"T{n:03d}", "p") for n in range(112, 117)]
    + [(f"T{n:03d}", "p") for n in range(10, 20)]
    + [("T020", "x"), ("T052", "p"), ("T021", "p"), ("T022", "p"), ("T023", "p")]
    + [("T024", "x"), ("T025", "p"), ("T026", "p"), ("T027", "p")]
)
case(NAV, [row(tid, None, st) for tid, st in _nav], roots=69, leaves=69)

# --- goaikit: uppercase [X], "- [P] tasks = ..." legend line ----------------
GOAIKIT = "goaikit__aikit__002-rust-spec-kit-complete__tasks.md"
case(GOAIKIT, [row(f"T{n:03d}", None, "p" if n in (126, 133, 136, 137) else "x")
               for n in range(1, 138)], roots=137, leaves=137)

# --- dougis 002-when-a-user: heading mode "### T001 [P] Title ✅" ----------
WHEN_USER = "dougis-org__dnd-tracker__002-when-a-user__tasks.md"
_when_done = (set(range(1, 25)) | {31, 32, 34, 35, 37, 38} | set(range(44, 62)))
case(WHEN_USER, [row(f"T{n:03d}", None, "x" if n in _when_done else "p") for n in range(1, 89)],
     roots=88, leaves=88, kind=HEADING)

# --- Wendealai export-error-diagnosis: heading mode "### 任务1.1：" ---------
EXPORT_DIAG = "Wendealai__WendealDashboard__export-error-diagnosis__tasks.md"
_export_ids = ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "2.5", "3.1", "3.2", "3.3",
               "4.1", "4.2", "4.3", "4.4", "5.1", "5.2", "5.3"]
case(EXPORT_DIAG, [row(i, None, "p") for i in _export_ids], roots=18, leaves=18, kind=HEADING)

# --- caraseli02 specs-root: heading mode "### Task 1.1: Title ✅" ----------
SPECS_ROOT = "caraseli02__MoldovaDirect___specs-root__tasks.md"
_specs_root = {  # phase: [(task number, state)]
    1: "xxxx", 2: "xxxxx", 3: "xxxxx", 4: "xxxx", 5: "xppppx", 6: "xxxxx",
    7: "pppp", 8: "xxxx", 9: "pppp", 10: "xxpp", 11: "ppppp", 12: "ppppp",
}
case(SPECS_ROOT, [row(f"{ph}.{i}", None, st) for ph, states in _specs_root.items()
                  for i, st in enumerate(states, 1)], roots=55, leaves=55, kind=HEADING)

# --- perezjoseph android-feature-parity: CRLF, Spanish, [-] and [~] --------
ANDROID = "perezjoseph__Gestion-inmobiliaria__android-feature-parity__tasks.md"
_android = {
    1: ("x", "xxxxxx"), 2: ("x", ""), 3: ("x", "xxxx"), 4: ("p", "xxxxxx"),
    5: ("x", "x" * 14), 6: ("p", "xxxx---"), 7: ("p", "------"), 8: ("p", "-"),
    9: ("p", "-----"), 10: ("p", "---"), 11: ("p", "-"), 12: ("-", ""),
}
case(ANDROID, [
    r for g, (st, kids) in _android.items()
    for r in [row(str(g), None, st)] + [row(f"{g}.{i}", str(g), s) for i, s in enumerate(kids, 1)]
], roots=12, leaves=55)

# --- itcakm: "- [ ] 1.1.1: ..." grouped under "### Task 1.1: ..." ----------
ITCAKM = "itcakm__ai-trader__backend-production-roadmap__tasks.md"
_itcakm = {
    "1.1": 6, "1.2": 6, "1.3": 6, "1.4": 6, "1.5": 6,
    "2.1": 6, "2.2": 7, "2.3": 7, "2.4": 6, "2.5": 6,
    "3.1": 7, "3.2": 6, "3.3": 6, "3.4": 6,
    "4.1": 6, "4.2": 6, "4.3": 6, "4.4": 6,
    "5.1": 6, "5.2": 6, "5.3": 6, "5.4": 5,
    "6.1": 6, "6.2": 6, "6.3": 6, "6.4": 5,
    "7.1": 6, "7.2": 6, "7.3": 6, "7.4": 6,
    "8.1": 6, "8.2": 6, "8.3": 6, "8.4": 6,
    "9.1": 6, "9.2": 6,
}
case(ITCAKM, [
    r for g, n in _itcakm.items()
    for r in [row(g, None, "?")] + [row(f"{g}.{i}", g, "p") for i in range(1, n + 1)]
], roots=36, leaves=217, groups=tuple(_itcakm))

# --- zionxai5000: the largest file (3074 lines, 413 tasks, 3-deep) ----------
ZION = "zionxai5000__Kiro-AWS-Build__seraphim-os-core__tasks.md"
_zion_kids = {
    "1": 18, "3": 14, "5": 19, "7": 14, "9": 11, "11": 3, "13": 36, "15": 22, "17": 41,
    "19": 39, "21": 31, "23": 22, "25": 20, "27": 14, "29": 11, "31": 10, "33": 6,
    "35": 6, "37": 12,
}
_zion_in_progress = {"7", "11.1", "15"}
_zion_pending = {"8.5", "8.6.2", "11", "11.2", "11.3", "12", "14", "16", "17", "19", "20",
                 "30", "32", "34", "35", "35.5", "35.6", "36"}


def _zion_state(tid: str) -> str:
    return "-" if tid in _zion_in_progress else "p" if tid in _zion_pending else "x"


def _zion_rows() -> list[tuple]:
    out = []
    for n in range(1, 39):
        g = str(n)
        out.append(row(g, None, _zion_state(g)))
        for i in range(1, _zion_kids.get(g, 0) + 1):
            c = f"{g}.{i}"
            out.append(row(c, g, _zion_state(c)))
            if c == "5.15":
                out += [row(f"5.15.{j}", "5.15", "x") for j in range(1, 20)]
        if g == "8":
            out.append(row("8.5", "8", _zion_state("8.5")))
            out += [row(f"8.5.{j}", "8.5", "x") for j in (1, 2, 3)]
            out.append(row("8.6", "8", "x"))
            out += [row("8.6.1", "8.6", "x"), row("8.6.2", "8.6", "p")]
    return out


case(ZION, _zion_rows(), roots=38, leaves=390)

# --- anqianqianqi class-exploration: id-less items, "1. [ ]" list ----------
CLASS_EXPL = "anqianqianqi__Henry-s-math-classroom-Kiro__class-exploration__tasks.md"
# the full table is too long to be useful; see test_class_exploration_*.

# --- kumagaias tasks_ja: Japanese, _要件:_, 39 optional tasks ---------------
NOVA_JA = "kumagaias__outbreak-radar-for-kids__nova-ai-recommendations__tasks_ja.md"
_nova_kids = {
    4: ["p"] + ["p*"] * 7,
    6: ["p", "p*", "p*"],
    7: ["p", "p"] + ["p*"] * 5,
    8: ["p", "p*", "p*"],
    10: ["p"] + ["p*"] * 9,
    11: ["p", "p*", "p*"],
    13: ["p", "p*", "p*", "p*"],
    14: ["p", "p*"],
    15: ["p", "p", "p", "p", "p*"],
    16: ["p", "p", "p*", "p*"],
    18: ["p", "p", "p*", "p*"],
    19: ["p", "p", "p*", "p*"],
    20: ["p", "p*"],
    21: ["p", "p"],
}
case(NOVA_JA, [
    r for g in range(1, 23)
    for r in [row(str(g), None, "p")]
    + [row(f"{g}.{i}", str(g), s) for i, s in enumerate(_nova_kids.get(g, []), 1)]
], roots=22, leaves=69)

# --- phan-tuan-thanh sprints-cycles: Vietnamese, 26 optional tasks ----------
VIET = "phan-tuan-thanh__mpm__sprints-cycles__tasks.md"
_viet_kids = {
    1: ["x", "x", "x"], 2: ["p", "p"], 3: ["p", "p*"], 4: ["p", "p*", "p*", "p*"],
    5: ["p", "p", "p*", "p*", "p*"], 6: ["p", "p*", "p", "p*", "p*", "p*"],
    7: ["p", "p*"], 8: ["p", "p*", "p*"], 9: ["p", "p*", "p*"], 10: ["p", "p*"],
    11: ["p", "p*", "p*"], 12: [], 13: ["p", "p*"], 14: ["p", "p", "p*"], 15: ["p", "p*"],
    16: ["p", "p", "p*"], 17: ["p", "p*"], 18: ["p", "p*"], 19: ["p", "p*"], 20: [],
}
_viet_checklist = [
    "Trang dùng `flex flex-col h-full` — KHÔNG dùng `max-w-* mx-auto p-6`",
    "Toolbar: `flex items-center gap-3 px-6 py-3 border-b flex-shrink-0`",
    "Content area: `flex-1 overflow-y-auto px-6 py-4`",
    'Button trong toolbar: `size="small"` + `[fluid]="false"`',
    "Mọi container: `bg-white dark:bg-surface-900`",
    "Mọi heading: `text-gray-900 dark:text-surface-0`",
    "Mọi label/subtext: `text-gray-500 dark:text-surface-400` hoặc `text-gray-700 dark:text-surface-200`",
    "Mọi border/divider: `border-gray-200 dark:border-surface-700`",
    "Table header row: `bg-gray-50 dark:bg-surface-800`",
    "Table row hover: `hover:bg-gray-50/50 dark:hover:bg-surface-800/50`",
    "Status badge Sprint (planning/active/completed) có cặp light + dark",
    "Capacity Indicator thanh tiến trình có dark variant",
    'Mọi `pButton` action: `[fluid]="false"` trừ khi là form submit cuối form',
    "Không có `flex-1` hoặc `w-full` trên action/toggle button",
    '`[cdkDropListSortingDisabled]="true"` trên mọi `cdkDropList`',
    "KHÔNG có `cdkDragHandle`",
    "Ghost div (opacity-25) đặt NGOÀI `cdkDrag`, trước nó",
    "Line indicator (h-0.5 bg-indigo-600 dark:bg-indigo-500) TRONG `cdkDrag`",
    '`(pointerdown)="$event.stopPropagation()"` trên mọi button/input bên trong item',
    "CSS: `transition: none !important` cho `.cdk-drop-list-dragging .cdk-drag`",
]
case(VIET, [
    r for g, kids in _viet_kids.items()
    for r in [row(str(g), None, "x" if g == 1 else "p")]
    + [row(f"{g}.{i}", str(g), s) for i, s in enumerate(kids, 1)]
# the id-less items under "### Checklist bắt buộc cho mọi frontend task", after
# the numbered tasks, are checklist items: kept out of runs like optional tasks
] + [row("h:" + t, None, "p*") for t in _viet_checklist], roots=40, leaves=73)

# --- Wendealai phase3: spec-workflow _Leverage:_ / _Prompt:_, [-] -----------
PHASE3 = "Wendealai__WendealDashboard__typescript-errors-phase3__tasks.md"
case(PHASE3, [row(str(n), None, "x" if n <= 5 else "-" if n == 6 else "p") for n in range(1, 12)],
     roots=11, leaves=11)

# --- Wendealai phase2: checkbox INSIDE headings, no ids ---------------------
PHASE2 = "Wendealai__WendealDashboard__typescript-errors-phase2__tasks.md"
# 71 id-less tasks; see test_phase2_*.

# --- hand-made: the seed script's plain numbered format --------------------
SEED = "seed_format.md"
case(SEED, table("""
1 | - | p
2 | - | p
2.1 | 2 | p
2.2 | 2 | p
3 | - | p*
4 | - | p
"""), roots=4, leaves=5, kind=NUMBERED)

# --- hand-made: spec-kit "(depends on T003)" in titles, "2FA ..." id-less ----
SPECKIT_DEPENDS = "speckit_depends.md"
case(SPECKIT_DEPENDS, table("""
T001 | - | x
T002 | - | p
T003 | - | p
T004 | - | p
h:2FA setup for admin accounts | - | p
"""), roots=5, leaves=5)


ALL_FILES = sorted(CASES) + [CLASS_EXPL, PHASE2]


# --------------------------------------------------------------------------
# generic, table-driven tests
# --------------------------------------------------------------------------


def test_corpus_files_present_and_counted():
    present = {p.name for p in DATA.iterdir() if p.suffix == ".md"}
    assert set(ALL_FILES) <= present
    assert len(ALL_FILES) >= 16


def test_corpus_bytes_preserved():
    """The copies keep the quirks the collector must cope with."""
    raw = {name: (DATA / name).read_bytes() for name in ALL_FILES}
    for name in (CRLF_ZH, ANDROID):
        assert raw[name].count(b"\r\n") == raw[name].count(b"\n") > 0, name
    for name in (KOREAN, RUSSIAN, LINKSHIELD, EXPORT_DIAG, PHASE2, PHASE3, RONGMA, BEAST):
        assert not raw[name].endswith(b"\n"), name
    assert b"\n\t- [ ] 1.1 " in raw[KLAUS]
    assert b"\n    - [x] 5.15.1 " in raw[ZION]
    assert b"\n   2.1. " in raw[SEED]
    assert b"\n\n\n\n\n\n\n\n\n\n  - " in raw[CRLF_ZH].replace(b"\r", b"")


@pytest.mark.parametrize("name", sorted(CASES))
def test_tree(name):
    spec = load(name)
    assert actual_rows(spec) == CASES[name]["rows"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_counts(name):
    spec = load(name)
    c = CASES[name]
    assert (len(spec.roots), len(spec.leaves())) == (c["roots"], c["leaves"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_warnings(name):
    spec = load(name)
    c = CASES[name]
    assert len(spec.warnings) == c["warnings"], [str(w) for w in spec.warnings]
    if c["warning_lines"] is not None:
        assert sorted(w.line for w in spec.warnings) == c["warning_lines"]
    for w in spec.warnings:
        assert name in str(w) and f":{w.line}:" in str(w)


@pytest.mark.parametrize("name", sorted(CASES))
def test_kinds(name):
    """Every task has the file's kind, except group headings."""
    spec = load(name)
    c = CASES[name]
    groups = set(c["groups"])
    got = {t.id: t.kind for t in spec.iter_tasks()}
    want = {t.id: (GROUP if t.id in groups else c["kind"]) for t in spec.iter_tasks()}
    assert got == want
    assert groups <= set(got)


@pytest.mark.parametrize("name", ALL_FILES)
def test_structural_invariants(name):
    """Ids unique, generated ids well-formed, parent/child links consistent,
    no CR or surrounding whitespace leaking into titles and metadata."""
    spec = load(name)
    tasks = list(spec.iter_tasks())
    ids = [t.id for t in tasks]
    assert len(ids) == len(set(ids))
    for t in tasks:
        if t.written_id is None:
            assert GEN_RE.match(t.id), t.id
        if t.parent is not None:
            assert t in t.parent.children
        for child in t.children:
            assert child.parent is t
        assert "\r" not in t.title and t.title == t.title.strip() and t.title, repr(t.title)
        assert all("\r" not in r and r == r.strip() for r in t.requirements), t.requirements
        assert all("\r" not in v for v in t.fields.values()), t.fields
    assert [t for t in spec.roots if t.parent is not None] == []


# --------------------------------------------------------------------------
# per-file details: titles, lines, requirements, depends, fields, tags
# --------------------------------------------------------------------------


def test_luchang_119_details():
    spec = load(LUCHANG_119)
    tasks = list(spec.iter_tasks())
    assert [t.line for t in tasks] == list(range(3, 11))
    assert all(GEN_RE.match(t.id) and t.written_id is None for t in tasks)
    assert all(t.mark == "x" for t in tasks)


def test_linkshield_numbered_details():
    spec = load(LINKSHIELD)
    check_attrs(spec, {
        "1": {"title": "Routing", "line": 3, "written_id": "1", "mark": None},
        "2": {"title": "Verify Flow", "line": 6},
        "3": {"title": "Resend Flow", "line": 11},
        "4": {"title": "UX & Accessibility", "line": 17},
        "5": {"title": "Tests", "line": 21},
    })


def test_mcp_flows_details():
    spec = load(MCP_FLOWS)
    check_attrs(spec, {
        "T1.1": {
            "title": "Add `prompts/autonomy.manifest.json` describing versions, consent phrases, "
                     "actions, required files, and `requiresLLM` flags. Wire it into the setup "
                     "package so the file ships with the extension bundle.",
            "line": 6, "written_id": "T1.1", "mark": "x",
        },
        "T1.3": {"title_end": "ensuring Requirement\u00a01 acceptance criteria are covered."},
        "T2.1": {"line": 12},
        # bare-indented continuation lines are joined to the title
        "T3.1": {"title": "Extend `ChatParticipant` to: register the `/intent` slash command, "
                          "validate payload versions/required files, forward validated intents "
                          "to the MCP server, and stream structured status + fallback responses "
                          "back to the UI.", "line": 17},
        "T3.2": {"line": 22},
        "T5.1a": {"title_start": "Inject the authenticated Copilot token", "line": 30,
                  "parent": None},
        "T6.2": {"mark": " ", "title_start": "Ensure fallback behavior: when the MCP server rejects"},
        "T7.4": {"line": 41},
    })


def test_genre_icons_details():
    spec = load(GENRE)
    check_attrs(spec, {
        "1": {"mark": "/", "title": "Foundation: Storage Service 移行", "line": 3},
        "1.1": {"title": "Firebase Storage 一時保存ヘルパーの修正", "line": 4,
                "requirements": ("1.1", "1.3"), "fields": {"Boundary": "Storage Service"}},
        "2": {"title": "Core API: アップロード・AI生成・移行 API の修正"},
        "2.1": {"tags": ("P",), "title": "手動画像アップロード API の Storage 移行",
                "requirements": ("1.1", "1.2"), "fields": {"Boundary": "upload-icon API"}},
        "2.2": {"tags": ("P",), "title": "アイコン移行 API の Storage 移行",
                "requirements": ("2.1", "2.2")},
        "3.1": {"tags": (), "title": "ローカルアセット配信 API の削除", "requirements": ("3.1",),
                "fields": {"Boundary": "Asset API"}},
        "4.2": {"title": "E2E Test の実装", "line": 48,
                "requirements": ("1.1", "1.2", "1.3", "2.1", "2.2", "3.1"),
                "fields": {"Boundary": "Testing"}},
    })


def test_admin_users_ui_details():
    spec = load(ADMIN_UI)
    check_attrs(spec, {
        "1": {"kind": GROUP, "title": "Foundation: 環境設定およびスキーマ拡張", "line": 5},
        "2": {"kind": GROUP, "title": "Core (Service & API Implementation)", "line": 27},
        "3": {"kind": GROUP, "title": "UI Implementation & Wiring", "line": 58},
        "4": {"kind": GROUP, "title": "Validation & Edge Cases", "line": 93},
        "1.1": {
            "title": "types/index.ts への AdminLog 型の追加", "line": 6,
            "requirements": ("3.2",), "depends": (),
            "fields": {
                "Boundary": "Types",
                "完了条件": "`src/types/index.ts` をインポートする他のファイルでコンパイルが正常に通り、"
                         "`AdminLog` 型が型エラーなく参照可能になること。",
            },
        },
        "1.2": {"requirements": ("1.1", "3.2"), "fields": {"Boundary": "SecurityRules"}},
        "2.1": {"tags": ("P",), "title": "ReputationService への resetUserReputation 関数の実装",
                "depends": ("1.1", "1.2"), "requirements": ("3.2",), "line": 28,
                "fields": {"Boundary": "ReputationService"}},
        "2.2": {"depends": ("2.1",), "requirements": ("3.1", "3.2")},
        "2.3": {"depends": ("1.1", "1.3"), "requirements": ("5.2", "5.5")},
        "2.4": {"depends": ("2.3",)},
        "3.1": {"depends": ("2.2",), "tags": ("P",),
                "requirements": ("1.1", "1.2", "2.1", "2.2", "3.1", "3.3", "3.4", "4.1", "4.2")},
        "3.3": {"tags": (), "depends": (), "title": "AuthContext での BAN 検知による即時サインアウトの実装"},
        "4.2": {"depends": ("3.2", "3.3", "3.4", "3.5"), "requirements": ("5.6", "6.1", "6.2"),
                "line": 101},
    })


def test_kbudget_speckit_details():
    spec = load(KBUDGET)
    check_attrs(spec, {
        "T001": {"tags": ("P", "US1+US2"), "line": 25,
                 "title_start": "Créer et implémenter le composant dans "
                                "`app/src/app/features/transactions/components/transaction-form/"
                                "transaction-form.ts` : decorator `@Component`",
                 "title_end": "retourne `true` si le contrôle est `touched && invalid`."},
        "T002": {"tags": ("P", "US1+US2")},
        "T004": {"tags": ("US1+US2",), "title_start": "Intégrer le composant dans le Shell : "},
        "T005": {"tags": ("US3",), "line": 42},
        "T006": {"tags": ("US3",),
                 "title": "Adapter le template `app/src/app/features/transactions/components/"
                          "transaction-form/transaction-form.html` : utiliser `{{ isEditMode() ? "
                          "'Modifier' : 'Enregistrer' }}` pour le bouton submit."},
        "T008": {"tags": ("US4",)},
        "T009": {"tags": (), "title": "Vérifier le lint et le build : exécuter `cd app && ng lint` "
                                      "et `cd app && ng build` pour confirmer l'absence d'erreurs"},
        "T010": {"line": 69, "title": "Vérifier visuellement le formulaire sur mobile (360px) via "
                                      "DevTools : toggle segmenté lisible, champs empilés "
                                      "verticalement, pas de scroll horizontal, boutons accessibles"},
    })


def test_klaus_details():
    spec = load(KLAUS)
    check_attrs(spec, {
        "1": {"title": "Set up modular monolith architecture", "line": 16},
        "1.1": {"title": "Research .NET 9 project structure for modular monoliths", "line": 17,
                "section": "Phase 1: Core CLI Foundation"},
        "3.5": {"title": "Add help and usage documentation", "line": 33},
        "1~2": {"title": "Implement annotation and tagging in F# domain", "line": 51,
                "written_id": "1", "section": "Phase 2: Annotation & Advanced Features"},
        "1.1~2": {"title": "Extend domain model for annotation and tags", "line": 52,
                  "written_id": "1.1"},
        "4.3~2": {"title": "Document performance results", "line": 97},
        "5~2": {"title": "Update CI to include performance checks", "line": 99},
        "4.3~3": {"title": "Add onboarding walkthroughs for new users", "line": 127},
        "1~5": {"title": "Ensure all dependencies are MIT/Apache 2.0 and actively maintained",
                "line": 134},
        "5~3": {"title": "Use Git for all version control; update branching strategy as decided"},
        "6": {"title": "Review and update documentation regularly", "line": 139,
              "section": "General/Recurring Tasks (All Phases)"},
    })


def test_korean_details():
    spec = load(KOREAN)
    check_attrs(spec, {
        "1": {"title": "개발 환경 설정", "line": 3},
        "2": {"title": "데이터베이스 구조 구현", "line": 21},
        "11": {"title": "문서화 및 배포 준비", "line": 218},
        "1.1": {"title": "Docker MySQL 환경 설정", "line": 5, "requirements": ("6.1",)},
        "1.2": {"title": "백엔드 의존성 추가", "requirements": ("6.1", "7.2")},
        "3.4": {"requirements": ("1.2", "2.3", "3.4", "6.3")},
        "4.1": {"title": "회원가입 API 구현", "requirements": ("1.1", "1.2", "1.3", "1.4", "1.5")},
        "10.1": {"requirements": ("모든 백엔드 요구사항",)},
        "11.3": {"title": "보안 체크리스트 검증", "line": 233,
                 "requirements": ("7.1", "7.2", "7.3", "6.3")},
    })


def test_admin_order_details():
    spec = load(ADMIN_ORDER)
    check_attrs(spec, {
        "1": {"title": "Set up database schema and core data models", "line": 5,
              "requirements": ("1.1", "2.1", "3.1")},
        "8": {"title": "UI Component Migration to shadcn-vue (Post-MVP Enhancement)", "line": 59,
              "requirements": (),
              "fields": {"Benefits": "Better accessibility, consistent design system, improved mobile UX",
                         "See": ".kiro/specs/admin-order-management/UI_IMPROVEMENTS.md"}},
        "8~2": {"title": "Create customer communication system ⚠️ **PARTIALLY COMPLETE (50%)**",
                "line": 69, "written_id": "8",
                # its _Requirements_/_Status_ lines follow its last child checkbox, so by the
                # details rule they belong to that child
                "requirements": ()},
        "h:❌ Create POST /api/admin/orders/[id]/notes.post.ts for adding admin notes": {
            "line": 76, "requirements": ("7.1", "7.2"),
            "fields": {"Status": "Backend ready, UI components missing"}},
        "9": {"title": "Build order fulfillment workflow system ✅ **COMPLETE**", "line": 80},
        "10": {"title": "Implement order modification and cancellation features", "line": 92,
               "mark": " ", "requirements": ("5.1", "5.2", "5.3", "5.4")},
        "14": {"title": "Integrate email notifications for status changes",
               "requirements": ("3.4", "7.3")},
        "16": {"title": "Add order timeline component ✅ **COMPLETE**"},
        "h:✅ Integrated with order detail page": {
            "line": 154, "requirements": ("2.4",),
            "fields": {"Status": "Fully implemented and working"}},
        "17": {"title": "Write comprehensive test suite", "line": 160,
               "requirements": ("All requirements validation",)},
    })


def test_russian_details():
    spec = load(RUSSIAN)
    check_attrs(spec, {
        "1": {"title": "Настройка базовой инфраструктуры аутентификации", "line": 3,
              "requirements": ("1.1", "2.2", "8.1")},
        "1.1": {"title": "Создать и настроить User модель", "line": 9,
                "requirements": ("1.1", "7.1", "5.4")},
        "4.5": {"title": "Создать VerifyRegistrationController",
                "requirements": ("5.2", "5.3", "5.4", "5.5")},
        "10": {"requirements": ("все требования",)},
        "10.1": {"title": "Создать unit тесты для сервисов", "line": 189, "mark": " ",
                 "requirements": ("1.1", "2.1", "3.1", "4.1")},
        "10.2": {"requirements": ("все API требования",)},
        "11.2": {"title": "Создать пользовательскую документацию", "line": 219,
                 "requirements": ("все требования",)},
    })


def test_crlf_chinese_details():
    spec = load(CRLF_ZH)
    check_attrs(spec, {
        "1": {"title": "优化数据加载模块", "line": 14,
              "requirements": ("2.1", "2.2", "2.3", "2.4", "2.5", "2.6")},
        "4": {"title": "重构整体汇聚情况区域", "line": 54,
              "requirements": ("1.1", "1.2", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "4.8")},
        "10": {"title": "性能优化和测试", "requirements": ("2.12", "2.13", "2.14")},
        "11": {"title": "文档和部署", "line": 173, "requirements": ("4.22", "4.23", "4.24", "4.25")},
    })


def test_crlf_also_via_read_text():
    """read_text() translates CRLF; the tree must not depend on it."""
    path = DATA / CRLF_ZH
    spec = collect_text(path.read_text(encoding="utf-8"), path)
    assert actual_rows(spec) == CASES[CRLF_ZH]["rows"]


def test_fouad_details():
    spec = load(FOUAD)
    check_attrs(spec, {
        "1": {"title": "Backend API - Profile, Addresses, and Payment Methods", "line": 3},
        "1.1": {"title": "Create CustomerAccount module with controller and service", "line": 10,
                "details_has": "Create `backend/src/customer-account/customer-account.module.ts`",
                "requirements": ("1.1", "1.2", "1.3", "1.4", "1.5", "2.1", "2.2", "2.3", "2.4",
                                 "2.5", "2.6", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6")},
        "1.2": {"requirements": ("1.1", "2.1", "2.2", "2.3")},
        # "**Validates: Requirements 1.3, ...**" is not a metadata line
        "1.6": {"title": "Write property tests for profile and address management", "line": 62,
                "requirements": (), "mark": " "},
        "1.7": {"title": "Checkpoint - Ensure all backend tests pass"},
        "2": {"title": "Backend API - Settings, Wishlist, and Authentication", "line": 75},
        "3.3": {"requirements": ("2.1", "2.2", "2.3", "2.4", "2.5", "2.6")},
        "4": {"mark": "-", "line": 221},
        "4.3": {"title": "Add API client methods for customer account",
                "requirements": ("1.1", "2.1", "3.1", "4.1", "5.1", "8.1", "8.2", "8.3", "8.4")},
        "4.7": {"title": "Final Checkpoint - Ensure all tests pass and account page is complete",
                "line": 295},
    })


def test_chat_panel_details():
    spec = load(CHAT_PANEL)
    check_attrs(spec, {
        "1": {"title": "Set up core chat panel infrastructure", "line": 3,
              "requirements": ("1.1", "1.2", "1.3")},
        "2": {"title": "Implement basic message display and input", "line": 11},
        "2.1": {"title": "Create message rendering system", "line": 12,
                "requirements": ("1.4", "1.5", "3.3")},
        "2.3": {"title": "Write unit tests for message components", "line": 28,
                "requirements": ("1.4", "1.5")},
        "8.5": {"title": "Write integration tests for workflow integration",
                "requirements": ("6.1", "6.2", "6.3", "6.4", "6.5")},
        "16.1": {"requirements": ("All",)},
        "17.3": {"title": "Plan @kiro participant removal", "line": 419, "requirements": ("1.1",)},
    })


def test_rate_limiting_details():
    spec = load(RATE)
    check_attrs(spec, {
        "1.1": {"title": "Add `credits` column to `profiles` table with default value of 3",
                "line": 6, "requirements": ("1.3", "9.1")},
        "2": {"requirements": (), "line": 26},
        "13.1": {"requirements": ("All repository requirements",)},
        "18": {"title": "Create credit balance API endpoint ⚠️ **CRITICAL - BLOCKING FEATURE**"},
        "18.1": {"title": "Create GET /api/v2/credits/balance endpoint ⚠️ "
                          "**REQUIRED FOR END-TO-END FUNCTIONALITY**",
                 "requirements": ("4.1", "4.2", "4.3", "10.1", "10.2", "10.3"),
                 "fields": {"NOTE": "Client-side code in `features/shared/api/getCreditBalance.ts` "
                                    "already calls this endpoint"}},
        "20.1": {"title": "Test User entity credit methods", "line": 343, "mark": "x",
                 "requirements": ("2.1", "2.2")},
        "21": {"title": "Write application layer tests", "line": 360},
        "24.3": {"title": "Document database schema changes", "line": 440,
                 "requirements": ("1.3", "1.4", "9.1", "9.2")},
    })


def test_whiteplus_details():
    spec = load(WHITEPLUS)
    check_attrs(spec, {
        "1": {"title": "数据库架构更新", "line": 3,
              "requirements": ("1.1", "1.2", "1.3", "1.4", "1.5", "2.1", "2.2", "2.3", "9.1",
                               "9.2", "9.3", "11.1")},
        "3.1": {"title": "创建 `src/composables/useRecurrence.ts`",
                "requirements": ("1.2", "1.3", "1.4", "1.5", "2.2")},
        "3.2": {"title": "为 useRecurrence 编写属性测试", "requirements": ()},
        "6": {"title": "更新 useEvents 以支持重复事件", "line": 90, "requirements": ()},
        "6~2": {"title": "更新 useEvents 以支持重复事件", "line": 95, "written_id": "6",
                "requirements": ("1.2", "1.3", "1.4", "1.5", "2.2", "2.3")},
        "7": {"title": "Checkpoint - 确保所有测试通过"},
        "8": {"mark": "-", "line": 109},
        "8~2": {"mark": " ", "line": 111},
        "8.1": {"line": 113, "requirements": ("4.1", "4.2", "4.3", "4.4", "5.1", "5.2", "5.3",
                                             "5.4", "6.1", "6.2", "6.3", "6.4", "7.1", "7.2",
                                             "7.3", "7.4")},
        "13": {"requirements": ("8.1", "8.2", "8.3", "8.4")},
        "16~2": {"title": "集成模板功能到 EventDialog", "line": 284, "requirements": ("9.1", "9.2")},
        "18.1": {"requirements": ()},
        "19": {"title": "Final Checkpoint - 确保所有测试通过", "line": 319},
    })


def test_kse_details():
    spec = load(KSE)
    check_attrs(spec, {
        "1": {"title": "Repository configuration and documentation", "line": 9,
              "requirements": ("1.1", "1.2", "1.3", "1.4", "6.4")},
        "2.2": {"title": "Write unit tests for package.json validation",
                "requirements": ("2.1", "2.2", "2.3", "2.5")},
        "3.2": {"title": "Write property test for Python version detection", "requirements": ()},
        "5": {"title": "Checkpoint - Ensure core functionality works"},
        "17": {"requirements": ("1.5", "1.6", "5.6")},
        "1~2": {"title": "Legacy spec baseline reconciled for current release state",
                "line": 301, "written_id": "1"},
        "2~2": {"title": "Core capability outcomes validated and retained"},
        "4~2": {"title": "Documentation and traceability synchronized", "line": 304},
    })


def test_rongma_details():
    spec = load(RONGMA)
    check_attrs(spec, {
        "0.1": {"title": "Hook配置优化 (已完成)", "line": 20},
        "1.3": {"title": "修复建议生成", "line": 105},
        "4.2": {"title": "用户体验优化"},
        "0.1.1": {"title": "合并重复的质量检查Hook", "line": 21, "fields": {
            "负责人": "🔍 Code Review Specialist",
            "完成时间": "2026-02-01",
            "实际成果": "创建unified-quality-4个重复Hook",
            "验收标准": "✅ 已完成，Hook功能整合成功",
        }},
        "0.1.2": {"fields": {"负责人": "🔍 Code Review Specialist"}},
        # " 1.1.3 开发Bug分类算法" (indented one space, not a checkbox) does not end the
        # details, so 1.1.2 holds two "**负责人**" lines; the rules do not say how a
        # repeated key is stored, so its fields are not checked
        "1.1.2": {"title": "实现Bug报告解析器", "line": 74},
        "1.2.2": {"fields": {"负责人": "🧮 Algorithm Egineer", "预估时间": "6小时"}},
        # "*: 🎯 Scrum Master/Tech Lead" (column 0, not a bullet) ends the details
        "1.3.3": {"title": "添加实施步骤生成", "line": 118, "details": "",
                  "fields_absent": ["预估时间", "验收标准", "技术要求"]},
        # ": 用户可以选择性确认修复操作" (column 0) ends the details
        "4.2.1": {"title": "交互式修复确认", "line": 258,
                  "fields": {"负责人": "🎨 UI/UX Engineer", "预估时间": "10小时"},
                  "fields_absent": ["验收标准", "技术要求"]},
        "4.2.2": {"title": "可视化报告", "line": 264},
        "h:精简的MCP配置：2个服务，权限优化": {"line": 294},
        "h:配置优化验证通过": {"line": 338},
    })
    dup = [t for t in spec.iter_tasks() if t.title == "单元测试覆盖率 100%"]
    assert [t.line for t in dup] == [303, 335]
    assert not dup[0].id.endswith("~2") and dup[1].id == dup[0].id + "~2"


def test_beast_mode_details():
    spec = load(BEAST)
    check_attrs(spec, {
        "1": {"title": "Implement Bootstrap Orchestrator Core", "line": 9},
        "2": {"title": "Create Parallel Execution Infrastructure", "line": 26},
        "3": {"title": "Create Live Migration Infrastructure", "line": 44},
        "1.1": {"title": "Create Bootstrap Orchestrator Framework", "line": 11, "written_id": "1.1",
                "requirements": ("4.1", "4.2", "4.3", "4.4", "4.5")},
        "2.2": {"title": "Implement Branch Management System",
                "requirements": ("6.1", "6.2", "6.3", "6.4", "6.5")},
        "h:Agent 1: Enhance Ghostbusters Framework Multi-Agent Capabilities": {
            "line": 66, "requirements": ("Foundation for all other components",)},
        "h:Daily Merge Coordination": {"line": 100, "requirements": ("All foundation requirements",)},
        # "Dependencies: Ghostbusters Framework (from Phase 2)" names no task id
        "h:Agent 1: Implement Systematic PDCA Orchestrator": {
            "line": 111, "depends": (),
            "requirements": ("Systematic PDCA Orchestrator spec requirements",)},
        "4.1": {"title": "Implement Beast Mode Core Integration Hub", "line": 160, "depends": (),
                "section": "Sequential Integration (Dependencies require order)",
                "requirements": ("Beast Mode Core spec requirements",)},
        "4.3": {"title": "Execute Live Migration from Monolithic to RM-Compliant",
                "requirements": ("3.1", "3.2", "3.3", "3.4", "3.5")},
        "h:Bootstrap System Failure": {"line": 238, "requirements": ()},
        "h:Parallel Efficiency Monitoring": {"line": 260},
    })


def test_transport_details():
    spec = load(TRANSPORT)
    check_attrs(spec, {
        "1": {"title": "Strengthen the `rpc_serializer` concept and add `media_type()`", "line": 27,
              "requirements": ("2.1", "2.2", "2.3")},
        "9.1": {"line": 185, "requirements": ("6.1", "6.2", "6.3"),
                "title": "Client request path: media type from `peer_capability_cache` when the "
                         "registry still supports it, else `default_media_type()`; `Content-Type` "
                         "set to it; `Accept` set from `preferred_media_types()` on **every** "
                         "request, not just the first. That last part is what makes the cache an "
                         "optimisation rather than a protocol: a stale entry costs one re-choice "
                         "by the peer, never a failure"},
        "9.2": {"title": "Client response path: `Content-Type` read and parameter-stripped (absent "
                         "or empty -> default); unsupported -> future fails with "
                         "`unsupported_media_type_error` and the cache is left **untouched**; on "
                         "a clean decode the cache records the peer's choice",
                "requirements": ("6.4", "6.5", "6.6")},
        "10": {"requirements": ("4.1-4.4", "5.1-5.4", "6.1-6.6", "9.4", "10.1-10.3")},
        "10a": {"title": "Wire content negotiation into `proxygen_client`/`proxygen_server`",
                "line": 235, "written_id": "10a", "requirements": ()},
        "10a.1": {"line": 253, "requirements": ("6.1", "6.2", "6.3", "9.4"),
                  "title": "Client: add `serializer_registry_type _registry` and a "
                           "`peer_capability_cache<std::uint64_t>`; pick the request `Media_Type` "
                           "via `select_request_media_type`, encode through the registry, and set "
                           "both `Content-Type` and the full `Accept` list"},
        "10a.4": {"line": 279},
        "11.4": {"title": "Server: collect request's `Accept` options; `select_output_media_type`; "
                          "on `std::nullopt` respond 4.06; else encode via registry and set one "
                          "`Content-Format` option", "requirements": ("5.5",)},
        "11.5": {"title": "Add `media_type` dimension to existing CoAP metrics; emit "
                          "`error_type=unsupported_media_type` on negotiation failure",
                 "requirements": ("10.1", "10.2", "10.3"),
                 # bold-key prose lines in the details are metadata lines too
                 "fields": {"Interop note recorded by `http_negotiation_integration_test`": "a",
                            "Coverage, checked by mutation rather than assumed": "putting a bogus"}},
        "16": {"line": 487, "requirements": ("8.2", "8.3", "8.4", "8.5", "11.6")},
    })


def test_raft_details():
    spec = load(RAFT)
    check_attrs(spec, {
        "300": {"title": "Define state machine interface concept", "line": 35,
                "requirements": ("19.1", "19.2", "19.3"), "fields": {"Priority": "Critical"}},
        "303": {"title": "Complete state machine integration in apply_committed_entries",
                "requirements": ("19.3", "19.4", "19.5")},
        "303.1": {"title": "Replace TODO in apply_committed_entries with state machine apply call",
                  "line": 63, "written_id": "303.1", "requirements": ("19.3",),
                  "fields": {"Priority": "High - Required for task 303 completion"}},
        "303.3": {"line": 75, "requirements": ("10.4", "10.5")},
        "412": {"title": "Run all 8 previously failing tests", "requirements": (),
                "fields": {"Result": "8/8 tests passing (100%)", "Priority": "High"}},
        "509": {"requirements": ("All requirements 1-31",)},
        "600": {"title": "Implement counter state machine example", "line": 430,
                "fields": {"Priority": "Required - Optional enhancement"}},
        "731": {"line": 637, "requirements": ("2.1", "2.2", "2.3", "2.4", "5.1")},
    })


def test_navigation_details():
    spec = load(NAV)
    check_attrs(spec, {
        "T001": {"mark": "X", "line": 13, "tags": (),
                 "title": "Create component directory `src/components/navigation/` and "
                          "`src/components/layouts/` if missing (paths: "
                          "`src/components/navigation/`, `src/components/layouts/`)"},
        "T003": {"tags": ("P",), "title": "Add placeholder exports file `src/components/index.ts` "
                                          "that re-exports new components (path: "
                                          "`src/components/index.ts`)"},
        "T051": {"line": 16},
        "T028": {"mark": "x", "line": 37},
        "T010": {"tags": ("P", "US1"), "line": 99, "section": "Tests (TDD-first) — US1"},
        "T012": {"tags": ("US1",), "depends": (),
                 "title": "Verify the `/dashboard` stub created in Phase 2a (T029) renders "
                          "`NotImplementedPage` and is reachable via navigation flows (no new file)"},
        "T020": {"tags": ("P", "US3"), "mark": "X", "line": 137},
        "T052": {"line": 141, "tags": ()},
        # "(optional)" inside the title is a word, not the optional marker (issue 17)
        "T026": {"tags": ("P",), "optional": False,
                 "title_norm": "Add Storybook/visual snapshot (optional) for `GlobalNav` and `Breadcrumb` "
                               "components (paths: `.storybook/`, `stories/`) - only if project "
                               "uses Storybook"},
        "T027": {"line": 156},
    })


def test_goaikit_details():
    spec = load(GOAIKIT)
    tags = {}
    for n in range(1, 138):
        if n in (1, 2, 13, 14):
            t = ()
        elif 3 <= n <= 30 or n >= 126:
            t = ("P",)
        elif 31 <= n <= 51 or 108 <= n <= 114:
            t = ("US1",)
        elif 52 <= n <= 62:
            t = ("US2",)
        elif 63 <= n <= 70:
            t = ("US3",)
        elif 71 <= n <= 81:
            t = ("US4",)
        elif 82 <= n <= 88:
            t = ("US5",)
        elif 89 <= n <= 107:
            t = ("US6",)
        else:
            t = ("US7",)
        tags[f"T{n:03d}"] = t
    assert {t.id: t.tags for t in spec.iter_tasks()} == tags
    check_attrs(spec, {
        "T001": {"title": "Create project structure per implementation plan in repository root",
                 "mark": "X", "line": 27, "section": "Phase 1: Setup (Shared Infrastructure)"},
        "T031": {"title": "Create clap command definition for `aikit init` in src/cli/init.rs"},
        "T126": {"mark": " ", "line": 302},
        "T137": {"title": "Cross-platform testing (Linux, macOS, Windows)", "line": 313},
    })
    # the "- [P] tasks = ..." legend (line 430) is not a task
    assert max(t.line for t in spec.iter_tasks()) == 313


def test_when_a_user_heading_mode_details():
    spec = load(WHEN_USER)
    assert all(t.mark is None for t in spec.iter_tasks())
    check_attrs(spec, {
        "T001": {"title": "Extend Zod user validation schemas", "tags": ("P",), "line": 54,
                 "fields": {"File": "`src/lib/validations/user.ts`"}},
        "T003": {"title": "Run validation tests to verify failure", "tags": (), "line": 83},
        "T024": {"title": "Run ProfileForm tests to verify they pass"},
        "T025": {"title": "Write ProfileSetupWizard component tests", "tags": ("P",), "line": 348},
        "T030": {"title": "Create profile settings page"},
        # Heading mode: a ✅ anywhere in a heading task is its status mark (done), not title text.
        "T031": {"title": "Create subscription utilities", "tags": ("P",), "line": 426},
        "T046": {"title": "Run dashboard component tests to verify failure"},
        "T062": {"title": "Create settings layout with tabs", "line": 760},
        "T088": {"title": "Code review and refactoring", "line": 1091},
    })


def test_export_diag_heading_mode_details():
    spec = load(EXPORT_DIAG)
    check_attrs(spec, {
        "1.1": {"title": "创建类型定义和接口", "line": 9, "written_id": "1.1",
                "fields": {"文件": "src/types/exportDiagnostic.ts", "优先级": "高",
                           "预估时间": "2小时"}},
        "2.5": {"title": "实现ExportDiagnosticEngine核心引擎", "line": 85},
        "4.4": {"title": "添加错误处理和日志记录", "fields": {"优先级": "高"}},
        "5.3": {"title": "编写使用文档和示例", "line": 205, "fields": {"优先级": "低",
                                                              "预估时间": "3小时"}},
    })


def test_specs_root_heading_mode_details():
    spec = load(SPECS_ROOT)
    check_attrs(spec, {
        "1.1": {"title": "Project Initialization", "line": 5, "written_id": "1.1", "depends": (),
                "fields": {"Status": "COMPLETED",
                           "Description": "Set up Nuxt 3 project with TypeScript and core modules"}},
        "1.2": {"title": "Vercel Integration", "depends": ("1.1",)},
        "3.5": {"title": "Admin Product Management", "depends": ("3.2", "2.4")},
        "5.1": {"title": "Checkout Flow Design", "line": 121, "depends": ("4.3",),
                "fields": {"Estimated Hours": "6"}},
        "5.2": {"title": "Address Validation", "fields": {"Status": "PENDING"}},
        "5.6": {"title": "Order Creation", "depends_has": ["5.4"]},
        "7.1": {"depends": ()},
        "8.4": {"title": "Inventory Management", "depends": ("8.1", "3.5")},
        "12.5": {"title": "Loyalty Program", "line": 381, "depends": ("2.1",)},
    })


def test_android_crlf_details():
    spec = load(ANDROID)
    check_attrs(spec, {
        "1.1": {"title": "Wire Propiedades screens (list, detail, form)", "line": 10,
                "requirements": ("1.1", "1.7", "1.8")},
        "2": {"title": "Checkpoint — Verify all CRUD navigation works", "line": 49},
        "5.4": {"requirements": ("3.2 through 3.9",)},
        "6.5": {"mark": "-", "line": 211, "title": "Create PlantillasScreen composable",
                "requirements": ("4.2", "4.6")},
        "6.6": {"mark": "~", "line": 218},
        "11.1": {"requirements": ("All (localization)",)},
        "12": {"mark": "~", "title": "Checkpoint — Full build verification", "line": 331},
    })


def test_itcakm_details():
    spec = load(ITCAKM)
    check_attrs(spec, {
        "1.1": {"title": "Implement Secrets Manager Service", "line": 5},
        "9.2": {"title": "Documentation", "line": 322},
        "1.1.1": {"title": "Create `backend/src/services/secrets-manager.ts` with AWS SDK integration",
                  "line": 6, "written_id": "1.1.1"},
        "2.2.7": {"title": "Add rate limit tracking from response headers", "line": 65},
        "9.2.6": {"title": "Document data flows and dependencies", "line": 328},
    })


def test_zion_details():
    spec = load(ZION)
    tasks = list(spec.iter_tasks())
    assert len(tasks) == 413
    states = [t.state for t in tasks]
    assert (states.count(X), states.count(P), states.count(IP)) == (392, 18, 3)
    # every 3-deep path
    deep = {t.id: [a.id for a in t.ancestors()] for t in tasks if len(list(t.ancestors())) == 2}
    assert deep == {
        **{f"5.15.{j}": ["5.15", "5"] for j in range(1, 20)},
        **{f"8.5.{j}": ["8.5", "8"] for j in (1, 2, 3)},
        **{f"8.6.{j}": ["8.6", "8"] for j in (1, 2)},
    }
    check_attrs(spec, {
        "1": {"title": "Phase 1 — Core Infrastructure and Kernel Foundation", "line": 9},
        "1.1": {"title": "Initialize monorepo project structure and tooling", "line": 10,
                "requirements": ("15.1", "15.6", "19.3")},
        "5.15": {"line": 388, "requirements": ()},
        "5.15.1": {"line": 389, "title_start": "Core pipeline tests (agent-program.test.ts"},
        "5.15.19": {"line": 407, "req_has": ["11.1", "11b.1–11b.10", "11d.1–11d.6", "19.1"],
                    "title": "Verify all tests compile and pass with "
                             "`npx vitest run packages/app/src/zionx/`"},
        "8.5": {"title": "Phase 4b — Local Dev Server (Real Services, No Mock Data)", "line": 548},
        "8.5.3": {"title": "Checkpo — Local dev server complete", "line": 567},
        "8.6.2": {"title": "Checkpoint — AWS deployment complete", "line": 581},
        "11.1": {"mark": "-", "line": 670,
                 "requirements": ("1.1", "2.1", "3.1", "6.1", "7.1", "11.1", "12.1", "13.1")},
        # the nearest heading above task 13 is "## Notes"
        "13": {"line": 713, "section": "Notes"},
        "35.5": {"title": 'Add "Dispatch to Kiro" button in dashboard chat', "line": 2984},
        "38": {"title": "Checkpoint — Phase 18 complete", "line": 3073},
    })


def test_class_exploration():
    spec = load(CLASS_EXPL)
    tasks = list(spec.iter_tasks())
    assert len(tasks) == 257
    # the "### 1.1 Create Database Migration File" headings would be groups, but no
    # task has an id below them, so they are dropped: everything is a root
    assert len(spec.roots) == 257 and len(spec.leaves()) == 257
    assert all(t.kind is CHECKBOX and t.parent is None for t in tasks)
    assert all(t.state is P for t in tasks)
    assert all(GEN_RE.match(t.id) for t in tasks[:-13])
    # ordered-list checkboxes "1. [ ] Run database migration": the number is the id
    assert [t.id for t in tasks[-13:]] == [str(n) for n in range(1, 14)]
    assert [t.title for t in tasks[:8]] == [
        "Create `supabase/add-class-exploration.sql`",
        "Add trial_requests table",
        "Add notifications table",
        "Add new columns to classes table",
        "Create indexes for performance",
        "Test migration on local database",
        "Add administrator role to roles table",
        "Create admin permissions",
    ]
    assert [t.line for t in tasks[:8]] == [6, 7, 8, 9, 10, 11, 14, 15]
    # "(optional)" in a title makes the task optional and leaves the title
    optional = [(t.line, t.title) for t in tasks if t.optional]
    assert optional == [(39, "Add price field"), (85, "Add parent phone field")]
    assert not any("(optional)" in t.title for t in tasks)
    # ordered-list checkboxes "1. [ ] Run database migration"
    assert [(t.line, t.title) for t in tasks[-13:]] == [
        (335, "Run database migration"),
        (336, "Create administrator role"),
        (337, "Assign admin role to designated user"),
        (338, "Configure email service"),
        (339, "Test email delivery"),
        (340, "Deploy to staging"),
        (341, "Run full test suite"),
        (342, "Fix any issues"),
        (343, "Deploy to production"),
        (344, "Monitor for errors"),
        (345, "Verify email notifications"),
        (346, "Test trial request flow"),
        (347, "Announce new feature"),
    ]
    # four titles occur twice: the second copy gets "~2" and a warning
    dups = {}
    for t in tasks:
        dups.setdefault(t.title, []).append(t)
    twice = {title: [(t.line, t.id) for t in ts] for title, ts in dups.items() if len(ts) > 1}
    assert sorted(twice) == ["Create page component", "Test email delivery",
                             "Test form submission", "Test responsive design"]
    assert [[line for line, _ in twice[title]] for title in sorted(twice)] == [
        [45, 66], [110, 339], [42, 92], [52, 76]]
    for title, pairs in twice.items():
        (_, first), (_, second) = pairs
        # "5. [ ] Test email delivery" has its list number as id: not a duplicate title
        assert second == ("5" if title == "Test email delivery" else first + "~2")
    assert sorted(w.line for w in spec.warnings) == [66, 76, 92]


def test_nova_ja_details():
    spec = load(NOVA_JA)
    check_attrs(spec, {
        "1": {"title": "プロジェクト構造とコアインターフェースのセットアップ", "line": 16,
              "requirements": ("1.1", "1.2", "1.3", "1.4", "1.5", "2.1-2.7", "3.1-3.7", "5.1-5.8")},
        "4.1": {"title": "calculateRiskLevelメソッドを持つRisk_Analyzerクラスを作成", "line": 40,
                "requirements": ("1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "5.4")},
        # "**検証: 要件 1.1**" is not a metadata line
        "4.2": {"title": "Risk_Analyzerのパフォーマンスプロパティテストを作成", "line": 47,
                "requirements": ()},
        "5": {"title": "チェックポイント - Risk_Analyzerテストが合格することを確認"},
        "19.2": {"title": "CostTrackerクラスを作成（オプション）", "requirements": ("なし（将来の拡張）",)},
        "20.1": {"requirements": ("すべての要件",)},
        "22": {"title": "最終チェックポイント - すべてのテストが合格することを確認", "line": 428},
    })


def test_vietnamese_details():
    spec = load(VIET)
    check_attrs(spec, {
        "1": {"title": "Tạo schema cơ sở dữ liệu và migrations (TypeORM)", "line": 18},
        "1.2": {"requirements": ("7.1", "9.9 (idempotency snapshot)", "10.4", "15.2")},
        "4.2": {"title": "Property test cho effective SP", "line": 66, "requirements": ()},
        "6.3": {"title": "Implement `completeSprint` (transaction, mutual exclusion, reassign task)",
                "line": 115},
        "20": {"title": "Checkpoint cuối — Đảm bảo toàn bộ test (backend + frontend) pass",
               "line": 297, "checklist": False},
        "h:" + _viet_checklist[0]: {"line": 314, "checklist": True},
        "h:" + _viet_checklist[-1]: {"line": 339, "checklist": True},
    })


def test_phase3_prompt_details():
    spec = load(PHASE3)
    check_attrs(spec, {
        "1": {"title": "Fix RedditWorkflowResponse type incompatibility in InformationDashboard.tsx",
              "line": 3, "requirements": ("1.1", "1.2"),
              "fields_absent": ["File", "Purpose"],
              "fields": {
                  "Leverage": "src/services/redditWebhookService.ts, "
                              "src/pages/InformationDashboard/types.ts",
                  "Prompt": "Role: TypeScript Developer specializing in interface alignment and "
                            "type compatibility | Task: Fix RedditWorkflowResponse type "
                            "incompatibility in InformationDashboard.tsx by aligning service and "
                            "component interface definitions, ensuring headerInfo property "
                            "requirements match between src/services/redditWebhookService.ts and "
                            "src/pages/InformationDashboard/types.ts | Restrictions: Do not break "
                            "existing service contracts, maintain backward compatibility, ensure "
                            "type safety across all usage points | Success: TypeScript compilation "
                            "passes for RedditWorkflowResponse usage, data flows correctly between "
                            "service and component layers",
              }},
        # a value with "_workflows, _loading" inside: only the closing "_" is dropped
        "3": {"fields": {"Prompt": "Role: Code Quality Engineer specializing in import "
                                   "optimization and dead code elimination | Task: Remove all "
                                   "unused imports and variables from InformationDashboard "
                                   "components including InvoiceOCRResult, AirtableService, "
                                   "Space, Typography, _workflows, _loading, _workflowStats and "
                                   "other unused declarations | Restrictions: Do not remove "
                                   "imports/variables that are used indirectly, verify usage "
                                   "before removal, maintain component functionality | Success: "
                                   "No unused import/variable TypeScript warnings, bundle size "
                                   "reduced, code is cleaner and more maintainable"}},
        "6": {"mark": "-", "title": "Fix RNDReport component type issues", "line": 49,
              "requirements": ("4.1", "4.2")},
        "11": {"title": "Final verification and build testing", "line": 104,
               "requirements": ("All",),
               "fields": {"Leverage": "npm run build, npx tsc --noEmit",
                          "Prompt": "Role: QA Engineer with expertise in build verification and "
                                    "TypeScript compilation | Task: Perform final verification by "
                                    "running TypeScript compilation checks and build process to "
                                    "ensure all errors are resolved and project builds "
                                    "successfully | Restrictions: Must verify all previous fixes "
                                    "work together, ensure no regressions introduced, build must "
                                    "complete without errors | Success: TypeScript compilation "
                                    "passes with no errors, build completes successfully, all "
                                    "type safety requirements met"}},
    })


def test_phase2_checkbox_in_heading():
    spec = load(PHASE2)
    tasks = list(spec.iter_tasks())
    assert len(tasks) == 71 and len(spec.roots) == 71 and len(spec.leaves()) == 71
    assert spec.warnings == []
    assert all(t.kind is CHECKBOX and t.state is P and t.mark == " " and t.parent is None
               for t in tasks)
    assert all(GEN_RE.match(t.id) and "~" not in t.id for t in tasks)
    assert [(t.line, t.title) for t in tasks[:6]] == [
        (18, "Fix App.tsx function return type error"),
        (24, "Fix useInvoiceOCR.ts function return path error"),
        (30, "Fix useModal.ts function return path error"),
        (36, "Fix LoginPage.tsx function return path error"),
        (42, "Fix ReportViewer.tsx function return path error"),
        (48, "Fix ReportViewer.tsx function return path error (2)"),
    ]
    assert [(t.line, t.title) for t in tasks[-2:]] == [
        (544, "Run final TypeScript compilation check"),
        (548, "Push final changes to GitHub"),
    ]


def test_seed_format_details():
    spec = load(SEED)
    check_attrs(spec, {
        # an indented, non-bullet line right below the task continues its title
        "1": {"title": "Create the project skeleton with a src/ layout and a README", "line": 5,
              "written_id": "1", "depends": (), "mark": None},
        "2": {"title": "Implement the numbered-list reader", "line": 7, "depends": ("1",),
              "details_has": "Read lines that start with a number and a dot."},
        "2.1": {"title": "Parse top-level items", "line": 11, "written_id": "2.1", "depends": ()},
        "2.2": {"title": "Attach subtasks to their parent", "line": 12, "depends": ("2.1",)},
        "3": {"title": "Add an optional progress bar", "line": 14, "depends": ("2", "2.2")},
        "4": {"title": "Release 0.1", "line": 16},
    })


def test_speckit_depends_details():
    spec = load(SPECKIT_DEPENDS)
    check_attrs(spec, {
        "T001": {"title": "Create project structure", "tags": (), "depends": (), "line": 9},
        "T002": {"title": "Add linting configuration", "tags": ("P",), "depends": ()},
        "T003": {"title": "Implement parser in src/parser.py (depends on T001)",
                 "tags": ("P", "US1"), "depends": ("T001",)},
        "T004": {"title": "Wire parser into the CLI (depends on T002, T003)", "tags": ("US1",),
                 "depends": ("T002", "T003"), "line": 12},
        # "2FA" is not an id: an id must be followed by whitespace, ".", ":" or the end
        "h:2FA setup for admin accounts": {"line": 13, "written_id": None, "tags": ()},
    })
