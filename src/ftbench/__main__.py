"""Run the ftbench command line (`python -m ftbench`)."""

import sys

# Through the workflow's fork server when it runs one (ftbench.runtime.forkserver), else in this process.
from ftbench.runtime.forkclient import main

sys.exit(main())
