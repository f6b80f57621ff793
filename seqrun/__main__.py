from __future__ import annotations

from seqrun.cli import console_main

raise SystemExit(console_main())
