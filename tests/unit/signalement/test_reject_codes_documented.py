"""docs/rejets.md is the contract of the reject codes: it lists exactly the codes intake uses."""

import re
from pathlib import Path

from services.signalement.intake import REASONS

DOC = Path(__file__).resolve().parents[3] / "docs" / "rejets.md"


def test_every_reject_code_is_documented_and_no_other():
    table = DOC.read_text().split("| code | meaning |", 1)[1]
    documented = set(re.findall(r"^\| `([a-z0-9.-]+)` \|", table, flags=re.M))
    assert documented == set(REASONS)
