"""`python -m agentd` is the same as the `agentd` console script."""

import sys

from agentd.cli import main

sys.exit(main())
