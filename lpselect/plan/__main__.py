"""python -m lpselect.plan: see lpselect/plan/cli.py."""

import sys

from .cli import main

sys.exit(main())
