"""`python -m xpubench`: the command line."""

from xpubench.cli.main import main

raise SystemExit(main())
