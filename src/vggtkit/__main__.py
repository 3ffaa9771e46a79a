"""`python -m vggtkit` runs the command line."""

import sys

from vggtkit.cli import main

sys.exit(main())
