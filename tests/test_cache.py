"""The cache between runs: ``--lf``, ``--ff``, ``--sw``, ``--cache-clear``, ``--cache-show``."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import use_command_agent

RUN = ("--backend", "command", "--no-tmux", "--delay", "0", "--reruns", "0")
TASKS = "# Tasks\n\n- [ ] 1. First\n- [ ] 2. Second\n- [ ] 3. Third\n- [ ] 4. Fourth\n"

AGENT = """\
import json, pathlib, sys
here = pathlib.Path(__file__).resolve().parent
task_id = sys.argv[1]
plan = json.loads((here / "plan.json").read_text("utf-8"))
with open(here / "calls.txt", "a", encoding="utf-8") as f:
    f.write(task_id + "\\n")
what = plan.get(task_id, "done")
final = {"done": "Finished. <promise>TASK_DONE</promise>",
         "halt": "Blocked. <promise>HALT</promise>"}.get(what, "I could not finish it.")
sys.stdout.write("working on " + task_id + "\\n\\n" + final + "\\n")
"""


def use_agent(project: Path, plan: dict[str, str]) -> None:
    (project / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    use_command_agent(project, AGENT, "{task_id}")


def calls(project: Path) -> list[str]:
    """Task ids the agent was run for since the last call, in order."""
    path = project / "calls.txt"
    if not path.exists():
        return []
    ids = path.read_text("utf-8").split()
    path.unlink()
    return ids


def collected(stdout: str) -> list[str]:
    """Node ids printed by ``--co -q``, in run order."""
    return [line for line in stdout.splitlines() if "::" in line]


def cache_dir(project: Path) -> Path:
    return project / ".kiro" / "specs" / ".seqrun" / "cache"


def lastfailed(project: Path) -> dict:
    return json.loads((cache_dir(project) / "lastfailed.json").read_text("utf-8"))


def test_lf_after_x_runs_only_the_failed_task(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"2": "fail"})
    assert run_seqrun(*RUN, "-x").returncode == 1
    assert calls(project) == ["1", "2"]
    assert lastfailed(project) == {"feat::2": True}
    assert (cache_dir(project) / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (project / ".kiro" / "specs" / ".seqrun" / ".gitignore").is_file()

    use_agent(project, {})  # the task is fixed
    result = run_seqrun(*RUN, "--lf")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(project) == ["2"]
    assert "collected 1 task / 3 deselected" in result.stdout
    assert "run-last-failure: rerun previous 1 failure" in result.stdout
    assert lastfailed(project) == {}  # passed: forgotten


def test_lf_with_no_failures_runs_all_or_none(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    result = run_seqrun("--co", "-q", "--lf")
    assert result.returncode == 0
    assert len(collected(result.stdout)) == 4
    assert "no previously failed tasks, running all" in run_seqrun("--co", "--lf").stdout

    result = run_seqrun("--co", "-q", "--lf", "--lfnf", "none")
    assert result.returncode == 5
    assert collected(result.stdout) == []


def test_lf_falls_back_when_known_failures_are_not_selected(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"2": "fail"})
    run_seqrun(*RUN, "-k", "2")
    result = run_seqrun("--co", "-q", "--lf", "-k", "not 2")
    assert len(collected(result.stdout)) == 3
    assert "1 known failure not in the selected tasks" in run_seqrun("--co", "--lf", "-k", "not 2").stdout
    assert lastfailed(project) == {"feat::2": True}  # not selected: left as it was


def test_ff_runs_failed_tasks_first(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"2": "fail", "3": "fail"})
    assert run_seqrun(*RUN).returncode == 1
    assert calls(project) == ["1", "2", "3", "4"]
    assert lastfailed(project) == {"feat::2": True, "feat::3": True}

    result = run_seqrun("--co", "-q", "--ff")
    assert collected(result.stdout) == [".kiro/specs/feat::2", ".kiro/specs/feat::3",
                                        ".kiro/specs/feat::1", ".kiro/specs/feat::4"]
    use_agent(project, {"3": "fail"})
    run_seqrun(*RUN, "--ff")
    assert calls(project) == ["2", "3"]  # 1 and 4 are ticked in tasks.md: skipped
    assert lastfailed(project) == {"feat::3": True}


def test_halted_counts_as_failed(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"3": "halt"})
    assert run_seqrun(*RUN).returncode == 2
    assert lastfailed(project) == {"feat::3": True}  # 4 not reached: not recorded
    result = run_seqrun("--co", "-q", "--lf")
    assert collected(result.stdout) == [".kiro/specs/feat::3"]


def test_not_reached_and_optional_skips_leave_entries_alone(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"3": "fail", "4": "fail"})
    run_seqrun(*RUN)
    assert lastfailed(project) == {"feat::3": True, "feat::4": True}
    use_agent(project, {"3": "fail"})
    run_seqrun(*RUN, "-x")  # 3 fails again, 4 is "not reached"
    assert calls(project)[-1] == "3"
    assert lastfailed(project) == {"feat::3": True, "feat::4": True}


def test_task_ticked_by_hand_leaves_lastfailed(make_spec, project, run_seqrun):
    folder = make_spec(TASKS, name="feat")
    use_agent(project, {"2": "fail"})
    run_seqrun(*RUN, "-k", "2")
    tasks = folder / "tasks.md"
    tasks.write_text(tasks.read_text().replace("- [ ] 2.", "- [x] 2."))
    run_seqrun(*RUN, "--lf")  # skipped: already done
    assert lastfailed(project) == {}


def test_cache_clear(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"2": "fail"})
    run_seqrun(*RUN, "-x")
    assert lastfailed(project)
    result = run_seqrun("--co", "-q", "--lf", "--cache-clear")
    assert len(collected(result.stdout)) == 4
    assert not (cache_dir(project) / "lastfailed.json").exists()


def test_cache_keys_do_not_depend_on_where_seqrun_starts(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"2": "fail"})
    run_seqrun(*RUN, "-x")
    result = run_seqrun("--co", "-q", "--lf", "feat", cwd=project / ".kiro" / "specs")
    # Node ids are relative to the project root (where .kiro is), as pytest's are to its rootdir.
    assert collected(result.stdout) == [".kiro/specs/feat::2"]


def test_two_specs_are_keyed_apart(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Alpha one\n- [ ] 2. Alpha two\n", name="alpha")
    make_spec("- [ ] 1. Beta one\n- [ ] 2. Beta two\n", name="beta")
    use_agent(project, {"2": "fail"})
    run_seqrun(*RUN, ".kiro/specs/beta")
    assert lastfailed(project) == {"beta::2": True}
    result = run_seqrun("--co", "-q", "--lf")
    assert collected(result.stdout) == [".kiro/specs/beta::2"]


def test_stepwise_stops_at_failure_and_resumes_from_it(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"2": "fail"})
    result = run_seqrun(*RUN, "--sw")
    assert result.returncode == 1
    assert calls(project) == ["1", "2"]
    assert "stepwise: task 2 failed" in result.stdout
    stepwise = json.loads((cache_dir(project) / "stepwise.json").read_text())
    assert stepwise == {"last_failed": "feat::2"}

    result = run_seqrun("--co", "-q", "--sw")
    assert collected(result.stdout) == [".kiro/specs/feat::2", ".kiro/specs/feat::3", ".kiro/specs/feat::4"]
    assert "stepwise: skipping 1 already passed task" in run_seqrun("--co", "--sw").stdout

    use_agent(project, {"3": "fail"})
    run_seqrun(*RUN, "--sw")
    assert calls(project) == ["2", "3"]
    assert json.loads((cache_dir(project) / "stepwise.json").read_text()) == {"last_failed": "feat::3"}
    use_agent(project, {})
    assert run_seqrun(*RUN, "--sw").returncode == 0
    assert calls(project) == ["3", "4"]
    assert json.loads((cache_dir(project) / "stepwise.json").read_text()) == {"last_failed": None}


def test_stepwise_skip_passes_the_first_failure_by(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    use_agent(project, {"1": "fail", "2": "fail"})
    assert run_seqrun(*RUN, "--sw-skip").returncode == 1
    assert calls(project) == ["1", "2"]
    assert json.loads((cache_dir(project) / "stepwise.json").read_text()) == {"last_failed": "feat::2"}


def test_cache_show(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    result = run_seqrun("--cache-show")
    assert result.returncode == 0
    assert "(empty)" in result.stdout
    use_agent(project, {"2": "fail"})
    run_seqrun(*RUN, "-x")
    calls(project)
    result = run_seqrun("--cache-show")
    assert result.returncode == 0
    assert "lastfailed.json contains:" in result.stdout and '"feat::2": true' in result.stdout
    assert calls(project) == []  # nothing ran


def test_damaged_cache_file_is_an_empty_cache(make_spec, project, run_seqrun):
    make_spec(TASKS, name="feat")
    cache_dir(project).mkdir(parents=True)
    (cache_dir(project) / "lastfailed.json").write_text("{not json")
    result = run_seqrun("--co", "-q", "--lf")
    assert result.returncode == 0
    assert len(collected(result.stdout)) == 4


# -- two runs of two specs under one root share the cache ----------------------------------------

BARRIER_AGENT = """\
import os, pathlib, sys, time
here = pathlib.Path(__file__).resolve().parent
if sys.argv[1] == "1":
    print("Finished. <promise>TASK_DONE</promise>")
    sys.exit(0)
# Task 2 of both specs: fail only once both runs' agents are here, so the runs overlap.
round_ = (here / "round.txt").read_text().strip()
arrived = here / "arrived"
arrived.mkdir(exist_ok=True)
(arrived / f"{os.environ['SPEC']}-{round_}").write_text("")
deadline = time.monotonic() + 60
while len(list(arrived.glob(f"*-{round_}"))) < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
print("I could not finish it.")
"""


def _run_both_at_once(project: Path, *args: str) -> list:
    import subprocess
    import sys

    from conftest import seqrun_env

    runs = [subprocess.Popen([sys.executable, "-m", "seqrun", *RUN, *args, f".kiro/specs/{spec}"],
                             cwd=project, env=seqrun_env({"SPEC": spec}), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for spec in ("alpha", "beta")]
    done = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        done.append((run.returncode, out, err))
    return done


def test_two_specs_run_at_once_keep_each_others_failures(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Alpha one\n- [ ] 2. Alpha two\n", name="alpha")
    make_spec("- [ ] 1. Beta one\n- [ ] 2. Beta two\n", name="beta")
    use_command_agent(project, BARRIER_AGENT, "{task_id}")
    (project / "round.txt").write_text("1")
    for status, out, err in _run_both_at_once(project, "--stuck-after", "2"):
        assert status == 1 and "FAILED" in out and "stuck" not in out, out + err
    assert lastfailed(project) == {"alpha::2": True, "beta::2": True}
    stuck = json.loads((cache_dir(project) / "stuck.json").read_text("utf-8"))
    assert {key: entry["count"] for key, entry in stuck.items()} == {"alpha::2": 1, "beta::2": 1}
    result = run_seqrun("--co", "-q", "--lf")
    assert collected(result.stdout) == [".kiro/specs/alpha::2", ".kiro/specs/beta::2"], result.stdout

    # A second overlapped round: the same failure twice in a row is stuck, in both specs.
    (project / "round.txt").write_text("2")
    for status, out, err in _run_both_at_once(project, "--stuck-after", "2"):
        assert status == 1, out + err
        assert "stuck: task 2 failed the same way 2 times in a row" in out, out + err
    stuck = json.loads((cache_dir(project) / "stuck.json").read_text("utf-8"))
    assert {key: entry["count"] for key, entry in stuck.items()} == {"alpha::2": 2, "beta::2": 2}
    assert lastfailed(project) == {"alpha::2": True, "beta::2": True}
