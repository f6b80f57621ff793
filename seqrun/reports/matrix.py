"""``seqrun --collect-only --matrix``: one job per spec, for a CI matrix.

It prints one line of JSON (``matrix.schema.json`` beside this module is its
JSON Schema) that GitHub Actions reads as it is with
``strategy.matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}``::

    {"include": [{"spec": ".kiro/specs/x", "name": "x", "key": "x", "branch": "seqrun/x",
                  "pending": 2, "tasks": 3}]}

- ``spec``: the path to pass to ``seqrun`` in the job (the spec's node id);
- ``name``: the spec's record name in the state file;
- ``key``: ``name`` as one path component (:func:`seqrun.paths.safe_name`),
  for artifact names, branch names and cache keys;
- ``branch``: ``seqrun/<key>``, the ``--git-branch`` of the job;
- ``pending``: the collected tasks still to do; ``tasks``: all collected tasks.

Guarantees:

- **Only specs with work to do**: a spec whose every collected task is
  ticked in tasks.md, or recorded ``passed``/``skipped`` in the state file,
  gets no job. The whole collection, done specs included, is
  ``seqrun --collect-only --json`` (the ``seqrun --status --json`` document,
  :mod:`seqrun.reports.status`).
- **Read-only**, like ``--status``: it answers in ``seqrun_cmdline_main``
  before ``seqrun_configure``; no lock, file, log or agent.
- **Exit status** as ``--collect-only``'s: 0 when it printed (an empty
  ``include`` too: every spec is done), 4 for a usage error, 5 when no task
  was collected (``{"include": []}`` is printed all the same).

Carrying a run over from one CI job to the next (``examples/ci/``): a run
lives in these paths of the specs folder, and only these —

- ``SEQUENTIAL_STATE.json``: every task's outcome and attempts (the ``running``
  record of the task a killed job was running);
- ``SEQUENTIAL_PROGRESS.md``: the human log;
- ``.seqrun/``: ``logs/`` (attempt logs and prompts), ``cache/`` (last failed,
  stuck counts), ``marks/`` (the ``[-]`` marks seqrun owns), locks and pid
  files (inert on another machine), and the reports the example workflows
  write there (``.seqrun/reports/``: JUnit, HTML, one report log per job);

— while the code and the ticks in tasks.md live in git, on the spec's branch
(``--git-commit --git-branch seqrun/<key>``), pushed at the end of each job.
A job that checks out that branch and restores those paths resumes as a run
after ``kill -9`` does: passed tasks are skipped, the task in flight is
``interrupted`` and runs again, nothing else runs twice
(``tests/test_ci_matrix.py`` kills one job of a matrix and checks it).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from seqrun.config import Config
from seqrun.paths import safe_name
from seqrun.reports.status import SpecStatus, TaskStatus, collect, spec_status

#: Outcomes after which a task is not run again.
FINISHED = frozenset({"passed", "skipped"})
BRANCH_PREFIX = "seqrun/"


@dataclass(frozen=True)
class MatrixJob:
    """One entry of ``include``: the job that runs one spec."""

    spec: str
    name: str
    key: str
    branch: str
    pending: int
    tasks: int

    def as_json(self) -> dict[str, Any]:
        return vars(self).copy()


def is_pending(task: TaskStatus) -> bool:
    return task.checkbox != "done" and task.outcome not in FINISHED


def matrix_job(status: SpecStatus) -> MatrixJob:
    key = safe_name(status.name)
    return MatrixJob(spec=status.nodeid, name=status.name, key=key, branch=BRANCH_PREFIX + key,
                     pending=sum(1 for t in status.tasks if is_pending(t)), tasks=len(status.tasks))


def show_matrix(config: Config) -> int:
    import json

    from seqrun.main import ExitCode

    session = collect(config)
    here = config.invocation_dir
    jobs = [matrix_job(spec_status(spec, [i for i in session.items if i.spec is spec], here))
            for spec in session.specs]
    document = {"include": [job.as_json() for job in jobs if job.pending]}
    # One line, no spaces to spare: it goes through $GITHUB_OUTPUT as ``matrix=<line>``.
    sys.stdout.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return ExitCode.OK if session.items else ExitCode.NO_TASKS_COLLECTED
