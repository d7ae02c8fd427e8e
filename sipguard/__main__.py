"""`python -m sipguard` runs the command line."""

from sipguard.cli import main

raise SystemExit(main())
