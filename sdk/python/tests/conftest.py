"""pytest setup for the SDK's own tests: makes `lbx_router` (sdk/python) importable uninstalled."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
