"""Debian's chromium, headless, driven by Playwright from PyPI through ``executable_path``
(Playwright's own browser download cannot work here): shared by the browser tests."""
import os
import shutil

import pytest

CHROMIUM = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser"))), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")


def launch_chromium(sync_api):
    """Yields a headless chromium (a generator for a module-scoped fixture); closes it after."""
    with sync_api.sync_playwright() as p:
        # The browser never runs under a sanitizer's LD_PRELOAD meant for dagrad's module.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, env=env)
        yield b
        b.close()
