"""``python -m soulwatch`` runs the command line."""

from soulwatch.cli import main

raise SystemExit(main())
