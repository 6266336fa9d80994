"""`python -m agentune.serve` = `agentune serve`."""

import sys

from agentune.serve import main

sys.exit(main())
