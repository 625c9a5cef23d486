"""pytest configuration for fastprune's tests.

Tests marked `@pytest.mark.slow` (minutes of CPU, e.g. the pretrained-weights accuracy check on the 10,000 CIFAR-10
test images) are skipped by default. Run them with `pytest -m slow`, or set FASTPRUNE_SLOW=1 to run them along with
everything else. `pytest -m "not slow"` is also understood and skips them explicitly.
"""
import os
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes of CPU; skipped unless `-m slow` or FASTPRUNE_SLOW=1")


def pytest_collection_modifyitems(config, items):
    asked = 'slow' in (config.getoption('-m') or '').replace('not slow', '') or os.environ.get('FASTPRUNE_SLOW') == '1'
    if asked: return
    skip = pytest.mark.skip(reason="slow test: run with `pytest -m slow` or FASTPRUNE_SLOW=1")
    for item in items:
        if 'slow' in item.keywords: item.add_marker(skip)
