"""`python -m bot` runs the shopbot CLI."""

from bot.cli import main

raise SystemExit(main())
