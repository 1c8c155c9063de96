"""Where the public sample FHIR exports live, for the tests that import them.

The exports sit beside the repository, in shared/data/fhir. SAMPLE_FHIR_DIR
points elsewhere. Tests that need them are skipped when they are missing,
unless the CI environment variable is set, in which case they fail.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings


def _find() -> Path | None:
    candidates = [
        os.environ.get("SAMPLE_FHIR_DIR", ""),
        Path(settings.BASE_DIR).parent / "shared" / "data" / "fhir",
        # Where the project's own machines keep the exports, for clones elsewhere.
        "/work/shared/data/fhir",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


SAMPLE_FHIR = _find()


def require_sample_data() -> Path:
    """Return the sample export folder, or skip (fail on CI) when it is missing."""
    if SAMPLE_FHIR is None:
        reason = (
            "The sample FHIR exports were not found beside the repository "
            "(shared/data/fhir). Set SAMPLE_FHIR_DIR to their folder."
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return SAMPLE_FHIR
