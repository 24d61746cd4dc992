import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))  # tools.model_factory
sys.path.insert(0, str(Path(__file__).resolve().parent))  # support


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real models and images). Absent on a user's fresh clone: the test says so.
    CI sets REFNET_REQUIRE_SHARED=1, where absence is a failure, not a skip."""
    if not (SHARED / "models").is_dir():
        message = f"../shared is absent ({SHARED}): real-model tests need it beside the project"
        if os.environ.get("REFNET_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED
