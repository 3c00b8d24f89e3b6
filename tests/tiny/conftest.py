"""The tiny tier's indexes take the tiny LLM's own dense leg: the trained dense model is real weights, tested
in tests/model. Package-scoped, so module-scoped fixtures that build an index see it too."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package", autouse=True)
def llm_dense_leg():
    import retriever.settings as settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "DEFAULT_DENSE_MODEL", None)
        yield
