"""`python -m tsdtp.cli ...`: the same as the `tsdtp` command."""

import sys

from tsdtp.cli import main

sys.exit(main())
