"""`python -m atari_dqn ...`: see atari_dqn.cli."""

import sys

from atari_dqn.cli import main

# The guard matters: env worker processes start by forkserver and re-import this module.
if __name__ == "__main__":
    sys.exit(main())
