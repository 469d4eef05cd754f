"""``python -m lolo_runtime.cli``: the same as ``lolo-run``."""

import sys

from lolo_runtime.cli import main

sys.exit(main())
