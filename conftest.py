"""Repository-wide pytest hooks (tests/conftest.py holds the fixtures)."""

from __future__ import annotations

import re

import pytest

_PRETRAINED = re.compile(r"from_pretrained\(\s*(?:[\"']([\w-]+)[\"'])?\s*[,)]")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip docstring examples that load bundled weights while that model ships none yet.

    They run unchanged as soon as the weights are added, so they cannot go stale.
    """
    doctests = [item for item in items if isinstance(item, pytest.DoctestItem)]
    if not doctests:
        return
    from emotionkit.recognizer import DEFAULT_MODEL, bundled_models

    available = None
    for item in doctests:
        names = {m or DEFAULT_MODEL for m in _PRETRAINED.findall("\n".join(e.source for e in item.dtest.examples))}
        if not names:
            continue
        if available is None:
            available = set(bundled_models())
        missing = sorted(names - available)
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"needs bundled weights for {', '.join(missing)}, not shipped yet"))
