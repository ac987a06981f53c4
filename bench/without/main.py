"""Our function without the steps WITHOUT names, comma-separated (bench/stand_ins.py): a
functions-framework target for bench.step_costs."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.stand_ins import take_away  # noqa: E402
from function import main as ours  # noqa: E402  (opens the stores, as the real target does)

take_away(ours.app, filter(None, os.environ.get("WITHOUT", "").split(",")))
handle = ours.handle
