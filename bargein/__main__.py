"""`python -m bargein` is the `bargein` command."""

import sys

from bargein.cli import main

sys.exit(main())
