"""Task-list shapes of issue 17, on real files from tests/data/corpus/.

Expectations are written by reading each file (see SOURCES.md there), never
by printing what the collector produces.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from conftest import use_command_agent

from seqrun.kiro import collect_text
from seqrun.nodes import TaskKind, TaskState
from seqrun.prompt import _task_block

DATA = Path(__file__).parent / "data" / "corpus"
RALPHEX = "umputun__ralphex__plan-draft-preview.md"
DOUGIS = "dougis-org__dnd-tracker__002-navigation-not-implemented-page__tasks.md"
WENDEAL_DIAG = "Wendealai__WendealDashboard__export-error-diagnosis__tasks.md"
MERLIN = "Steve-Merlin-Projecct__Merlin_2__tasks-prd-librarian-system.md"


def load(name: str):
    path = DATA / name
    return collect_text(path.read_bytes().decode("utf-8"), path)


def use_corpus_file(project: Path, name: str) -> None:
    folder = project / ".kiro" / "specs" / "feature"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / name, folder / "tasks.md")


def selected(stdout: str) -> list[str]:
    return [line.split("::", 1)[1] for line in stdout.splitlines() if "::" in line]


# -- heading tasks whose steps are checkboxes (ralphex plans) -------------------


def test_ralphex_headings_are_the_tasks_and_their_checkboxes_the_steps():
    spec = load(RALPHEX)
    tasks = list(spec.iter_tasks())
    # "### Task 1:" .. "### Task 9:"; none of the 58 checkbox lines is a task
    assert [t.id for t in tasks] == [str(n) for n in range(1, 10)]
    assert all(t.kind is TaskKind.HEADING and t.parent is None for t in tasks)
    assert [t.line for t in tasks] == [26, 40, 55, 70, 87, 100, 113, 119, 129]
    assert tasks[7].title == "End-to-end testing with toy project"
    # tasks 1-7 have every step ticked: done; 8 and 9 have none ticked
    assert [t.state for t in tasks] == [TaskState.DONE] * 7 + [TaskState.PENDING] * 2
    assert [len(t.steps) for t in tasks] == [7, 8, 8, 10, 7, 5, 3, 7, 3]
    assert [s.line for s in tasks[7].steps] == list(range(121, 128))
    assert tasks[8].steps[2].text == "move this plan to `docs/plans/completed/`"
    assert not any(s.done for s in tasks[8].steps)
    # "### Task 7: Verify acceptance criteria" is one task, its criteria its steps
    assert tasks[6].title == "Verify acceptance criteria"
    assert [s.text for s in tasks[6].steps] == [
        "run full test suite: `go test ./...`", "run linter: `golangci-lint run`",
        "verify test coverage meets 80%+"]


def test_ralphex_steps_are_shown_in_the_prompt():
    task = list(load(RALPHEX).iter_tasks())[7]
    block = _task_block(task, [])
    assert "- [ ] run `./scripts/prep-toy-test.sh` to create test environment" in block
    assert "- [ ] verify progress file contains Q&A and draft review history" in block


def test_k_selects_a_ralphex_task_by_its_heading_number(project, run_seqrun):
    use_corpus_file(project, RALPHEX)
    result = run_seqrun("--co", "-q", "-k", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert selected(result.stdout) == ["8"]


def test_task_headings_with_acceptance_criteria_checkboxes():
    # "### Task 1.1: …" under "## Phase 1: …"; "**Subtasks:**" a numbered list,
    # "**Acceptance Criteria:**" 142 "- [ ]" lines in all: none is a task
    spec = load(MERLIN)
    tasks = list(spec.iter_tasks())
    phases = {1: 5, 2: 6, 3: 4, 4: 5, 5: 5, 6: 2}
    assert [t.id for t in tasks] == [f"{p}.{n}" for p, count in phases.items() for n in range(1, count + 1)]
    assert all(t.kind is TaskKind.HEADING and t.parent is None for t in tasks)
    assert all(t.state is TaskState.PENDING for t in tasks)
    assert sum(len(t.steps) for t in tasks) == 142
    first = tasks[0]
    assert (first.line, first.title) == (29, "Create Metadata Standard Documentation")
    assert [s.line for s in first.steps] == [49, 50, 51, 52, 53]
    assert first.steps[0].text == "`docs/standards/metadata-standard.md` created"
    assert "1. Create `docs/standards/metadata-standard.md`" in first.details
    assert tasks[5].depends == ("1.2", "1.4")  # "**Dependencies:** Task 1.2, Task 1.4"


def test_k_selects_a_phase_of_task_headings(project, run_seqrun):
    use_corpus_file(project, MERLIN)
    result = run_seqrun("--co", "-q", "-k", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert selected(result.stdout) == ["1.1", "1.2", "1.3", "1.4", "1.5"]


def test_id_field_of_a_task_heading_is_an_alias(project, make_spec, run_seqrun):
    # hand-written: no real file of this shape was found in the time available
    make_spec("# タスク\n\n### Task 5: ログイン画面\n- **ID**: T-5\n- [ ] フォームを作る\n\n"
              "### Task 6: ログアウト\n- **ID**: T-6\n- **依存**: T-5 のあと\n- [ ] ボタンを作る\n")
    assert selected(run_seqrun("--co", "-q", "-k", "T-5").stdout) == ["5"]
    assert selected(run_seqrun("--co", "-q", "-k", "5").stdout) == ["5"]


# -- -k with ids that are not dotted numbers --------------------------------------


def test_k_lettered_id_matches_that_id_not_titles_that_mention_it(project, run_seqrun):
    # T012's title says "stub created in Phase 2a (T029)": it is not task T029
    use_corpus_file(project, DOUGIS)
    result = run_seqrun("--co", "-q", "-k", "T029")
    assert result.returncode == 0
    assert selected(result.stdout) == ["T029"]
    assert selected(run_seqrun("--co", "-q", "-k", "T012 or T030").stdout) == ["T030", "T012"]
    # a plain word still matches titles as a substring
    assert selected(run_seqrun("--co", "-q", "-k", "breadcrumb and T021").stdout) == ["T021"]


def test_k_number_selects_its_dotted_tasks_without_a_task_of_that_number(project, run_seqrun):
    # "## 阶段2：核心组件开发" is a phase heading, not a task; its tasks are 2.1-2.5
    use_corpus_file(project, WENDEAL_DIAG)
    result = run_seqrun("--co", "-q", "-k", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert selected(result.stdout) == ["2.1", "2.2", "2.3", "2.4", "2.5"]
    # a dot boundary: "-k 1" is not 1x.y
    assert selected(run_seqrun("--co", "-q", "-k", "1").stdout) == ["1.1", "1.2", "1.3"]


# -- "(Optional)" only as a marker ------------------------------------------------


def test_optional_only_at_either_end_of_a_title(tmp_path):
    spec = collect_text(
        "- [ ] 1. Add organization_id field (Optional) to Conversation model\n"
        "- [ ] 2. (Optional) Add a dark theme\n"
        "- [ ] 3. Add a dark theme (optional)\n"
        "- [ ]* 4. Property test for the theme\n",
        tmp_path / "tasks.md")
    tasks = {t.id: t for t in spec.iter_tasks()}
    assert [tasks[i].optional for i in "1234"] == [False, True, True, True]
    assert tasks["1"].title == "Add organization_id field (Optional) to Conversation model"
    assert tasks["2"].title == "Add a dark theme" == tasks["3"].title


def run_ralphex_task(project, run_seqrun, agent_source: str, task_id: str):
    """Run task ``task_id`` of the ralphex plan with ``agent_source`` as the
    agent; return tasks.md, its bytes before the run, and the run."""
    use_corpus_file(project, RALPHEX)
    tasks_md = project / ".kiro" / "specs" / "feature" / "tasks.md"
    before = tasks_md.read_bytes()
    use_command_agent(project, agent_source, "{prompt_file}")
    result = run_seqrun("--no-tmux", "--delay", "0", "--backend", "command", "-k", task_id)
    return tasks_md, before, result


def test_a_passing_heading_task_ticks_its_steps_and_nothing_else(project, run_seqrun):
    tasks_md, before, result = run_ralphex_task(project, run_seqrun, 'print("<promise>TASK_DONE</promise>")\n', "8")
    assert result.returncode == 0, result.stdout + result.stderr
    # lines 121-127 are task 8's seven "- [ ]" steps: each gets its x, one byte
    lines = before.splitlines(keepends=True)
    for index in range(120, 127):
        assert lines[index].startswith(b"- [ ] ")
        lines[index] = b"- [x] " + lines[index][6:]
    assert tasks_md.read_bytes() == b"".join(lines)
    result = run_seqrun("--co", "-q")
    assert "9 tasks collected (8 done, 0 optional)" in result.stdout


def test_a_failing_heading_task_leaves_its_steps(project, run_seqrun):
    tasks_md, before, result = run_ralphex_task(project, run_seqrun, 'print("no promise")\n', "9")
    assert result.returncode == 1, result.stdout + result.stderr
    assert tasks_md.read_bytes() == before


# -- checklists after numbered tasks ------------------------------------------------

VIET = "phan-tuan-thanh__mpm__sprints-cycles__tasks.md"


def test_checklist_items_are_listed_as_such_and_left_out_by_k(project, run_seqrun):
    # "### Checklist bắt buộc cho mọi frontend task" (line 308) follows tasks 1-20:
    # its 20 id-less "- [ ]" lines (314-339) are a person's checks, not work
    use_corpus_file(project, VIET)
    listing = run_seqrun("--co").stdout
    assert "<Task 20 [pending] Checkpoint cuối" in listing
    assert listing.count("[checklist, pending]") == 20
    assert "[checklist, pending] KHÔNG có `cdkDragHandle`>" in listing
    kept = selected(run_seqrun("--co", "-q", "-k", "not checklist").stdout)
    assert len(kept) == 73 - 20  # the 73 leaves less the 20 checks
    assert not any(i.startswith("h") for i in kept)
    assert len(selected(run_seqrun("--co", "-q", "-k", "checklist").stdout)) == 20


def test_a_common_task_line_makes_the_same_task_as_a_rare_one():
    """``- [ ] 1.2 Title`` takes a short way through the reader (seqrun.kiro),
    a line with a tag the long one: both tasks have every field of a Task, with
    the same values but for what the lines say differently."""
    from dataclasses import fields

    from seqrun.nodes import Task

    spec = collect_text("- [x] 1 Parent\n  - [-]* 1.2 Child does a thing\n  - [-]* 1.3 [P] Child does a thing\n",
                        Path("t.md"))
    (parent,) = spec.roots
    common, rare = parent.children
    assert (common.tags, rare.tags) == ((), ("P",))
    for f in fields(Task):
        if f.name in ("id", "line", "written_id", "tags", "read_metadata", "body"):
            continue
        assert getattr(common, f.name) == getattr(rare, f.name), f.name
    assert (common.id, common.line, common.state, common.mark, common.optional) == (
        "1.2", 2, TaskState.IN_PROGRESS, "-", True)
    assert (common.details, common.fields, common.body) == ("", {}, [])
    assert parent.title == "Parent" and parent.done and parent.aliases == () and parent.steps == ()
