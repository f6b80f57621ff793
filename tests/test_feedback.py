"""Reruns that learn: each attempt after one that did not pass is told why —
its kind and reason, the agent's own last words, the verification output —
in this run and the next one (``--lf``); and every prompt gives the task its
context: the parent tasks, the documents that exist, the checks to come."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import read_state_file, use_command_agent

SPECS = Path(".kiro") / "specs"

#: An agent that answers from plan.json, one answer per call, and keeps nothing else.
AGENT = """\
import json, pathlib, sys
here = pathlib.Path(__file__).resolve().parent
plan = json.loads((here / "plan.json").read_text())
answer = plan.pop(0) if len(plan) > 1 else plan[0]
(here / "plan.json").write_text(json.dumps(plan))
print("working")
print(answer)
"""

DONE = "All finished. <promise>TASK_DONE</promise>"


def use_agent(project: Path, answers: list[str]) -> None:
    (project / "plan.json").write_text(json.dumps(answers))
    use_command_agent(project, AGENT, "{prompt_file}")


def prompt(project: Path, task: str, attempt: int, spec: str = "feature") -> str:
    return (project / SPECS / ".seqrun" / "logs" / spec / task / f"{attempt}.prompt.md").read_text("utf-8")


RUN = ("--backend", "command", "--no-tmux", "--delay", "0")


def test_attempt_2_is_told_attempt_1s_kind_reason_and_final_words(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Write the parser\n")
    use_agent(project, ["I ran out of ideas: the lexer test XJ-77 keeps failing.", DONE])
    result = run_seqrun(*RUN, "--reruns", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = prompt(project, "1", 1), prompt(project, "1", 2)
    assert "## Previous attempt" not in first
    assert "Attempt 1 of this task did not pass (no-marker): no TASK_DONE marker in the final message" in second
    assert "the lexer test XJ-77 keeps failing." in second


def test_a_failed_verification_is_rerun_with_its_output_and_then_passes(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Make the tests pass\n")
    use_agent(project, [DONE])
    check = "sh -c 'if [ -e verified-once ]; then exit 0; fi; touch verified-once; echo UNIQUE-TOKEN-$((4800 + 21)); exit 1'"
    result = run_seqrun(*RUN, "--reruns", "1", "--verify", check)
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = prompt(project, "1", 1), prompt(project, "1", 2)
    # The first prompt already names the command that will judge the work.
    assert "## How your work is checked" in first and "touch verified-once" in first
    assert "UNIQUE-TOKEN-4821" not in first
    assert "(verification)" in second and "UNIQUE-TOKEN-4821" in second
    assert "The verification `sh -c 'if [ -e verified-once ]" in second
    task = read_state_file(project / SPECS / "SEQUENTIAL_STATE.json")["specs"]["feature"]["tasks"]["1"]
    assert [(h["attempt"], h["kind"]) for h in task["history"]] == [(1, "verification"), (2, "passed")]


def test_the_next_mornings_lf_run_carries_the_last_failure_from_the_state_file(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Write the parser\n- [ ] 2. Write the printer\n")
    use_agent(project, ["Blocked by the flaky fixture QZ-19.", DONE])
    first = run_seqrun(*RUN, "--reruns", "0", "-k", "1")
    assert first.returncode == 1, first.stdout + first.stderr
    second = run_seqrun(*RUN, "--reruns", "0", "--lf")
    assert second.returncode == 0, second.stdout + second.stderr
    text = prompt(project, "1", 2)
    assert "Attempt 1 of this task did not pass (no-marker)" in text
    assert "Blocked by the flaky fixture QZ-19." in text
    assert not (project / SPECS / ".seqrun" / "logs" / "feature" / "2").exists()  # --lf ran only 1


def test_only_the_newest_history_record_keeps_its_feedback(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Impossible\n")
    use_agent(project, ["first failure words", "second failure words", "third failure words"])
    assert run_seqrun(*RUN, "--reruns", "2").returncode == 1
    history = read_state_file(project / SPECS / "SEQUENTIAL_STATE.json")[
        "specs"]["feature"]["tasks"]["1"]["history"]
    assert ["final_message" in h for h in history] == [False, False, True]
    assert "third failure words" in history[-1]["final_message"]


def test_a_leaf_prompt_has_its_parents_and_only_documents_that_exist(make_spec, project, run_seqrun):
    folder = make_spec("- [ ] 3. Build the web API\n\n  Serve JSON; never HTML. Keep it stateless.\n\n"
                       "  - [ ] 3.2 Write the greeting handler\n")
    (folder / "design.md").write_text("# Design\n")
    use_agent(project, [DONE])
    assert run_seqrun(*RUN).returncode == 0
    text = prompt(project, "3.2", 1)
    assert "### Part of\n- 3 Build the web API" in text
    assert "Serve JSON; never HTML. Keep it stateless." in text
    assert f"- Design: {folder / 'design.md'}" in text
    assert "requirements.md" not in text


def test_a_template_gets_the_feedback_placeholder(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Write the parser\n")
    (project / "template.md").write_text("Do {task_id}.\n[{previous_attempt}]\nEnd with {done_marker}\n")
    use_agent(project, ["Not yet: WX-3 is broken.", DONE])
    result = run_seqrun(*RUN, "--reruns", "1", "--prompt-template", "template.md")
    assert result.returncode == 0, result.stdout + result.stderr
    assert prompt(project, "1", 1) == "Do 1.\n[]\nEnd with <promise>TASK_DONE</promise>\n"
    assert "WX-3 is broken." in prompt(project, "1", 2)


FEEDBACK_PLUGIN = """\
from seqrun.hookspec import hookimpl

@hookimpl(wrapper=True)
def seqrun_attempt_feedback(previous):
    text = yield
    return text + "Team note: attempt %d was a %s.\\n" % (previous.number, previous.kind.value)
"""


def test_a_plugin_adds_to_the_feedback(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Write the parser\n")
    (project / SPECS / "conftest.py").write_text(FEEDBACK_PLUGIN)
    use_agent(project, ["no luck", DONE])
    assert run_seqrun(*RUN, "--reruns", "1").returncode == 0
    text = prompt(project, "1", 2)
    assert "Attempt 1 of this task did not pass" in text and "Team note: attempt 1 was a no-marker." in text
