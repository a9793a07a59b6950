"""Reusable ComponentResources of the clickstream-personalization program."""

import sys
from pathlib import Path

# The contract with the functions (``common.contract``) ships inside their package under handlers/; the program reads
# that same file rather than a copy.
_HANDLERS = str(Path(__file__).resolve().parent.parent / "handlers")
if _HANDLERS not in sys.path:
    sys.path.append(_HANDLERS)
