"""``python -m earthport``: the same entry point as the ``earthport`` command."""

from earthport.cli import main

raise SystemExit(main())
