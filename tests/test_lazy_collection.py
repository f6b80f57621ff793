"""What a listing leaves for a run: a task's metadata (seqrun.metadata) and
the patterns of rare lines are only loaded when something needs them.

Each test runs in a fresh interpreter, since the test session itself has
long since loaded everything.
"""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import seqrun_env

SPEC = (
    "# Plan\n\n- [ ] 1. Group\n  - [ ] 1.1 Task one\n    - Write it\n    - _Requirements: 2.1, 2.2_\n\n"
    "  - [x] 1.2 Task two\n"
)

PROBE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from seqrun.kiro import collect_text\n"
    f"spec = collect_text({SPEC!r}, Path('.kiro/specs/f/tasks.md'))\n"
    "leaves = spec.leaves()\n"
    "print([t.nodeid for t in leaves], 'seqrun.metadata' in sys.modules)\n"
    "print(leaves[0].requirements, leaves[1].metadata.details == '', 'seqrun.metadata' in sys.modules)\n"
    "from seqrun.nodes import TaskMetadata\n"
    "from seqrun.metadata import TaskMetadata as Same\n"
    "print(TaskMetadata is Same is type(leaves[0].metadata))\n"
)


def test_listing_builds_no_metadata_and_reading_it_still_works():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                            env=seqrun_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "['.kiro/specs/f/tasks.md::1.1', '.kiro/specs/f/tasks.md::1.2'] False",
        "('2.1', '2.2') True True",
        "True",
    ]
