from xpubench.cli.main import main

raise SystemExit(main())
