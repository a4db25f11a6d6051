"""pytest setup for this example: makes the SDK (sdk/python) importable without installing it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "sdk" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
