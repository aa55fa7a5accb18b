"""Audio tests run real alsa-lib against plugin PCMs from tests/audio/asound.conf.

ALSA_CONFIG_PATH must be set before alsa-lib first reads its configuration, so it is
set here at import time (only alsa-lib reads it). Per-test input/output files are
passed through AGENTD_TEST_MIC / AGENTD_TEST_SPK, which the config reads at open time.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

os.environ["ALSA_CONFIG_PATH"] = str(Path(__file__).with_name("asound.conf"))

if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
    pytest.skip("espeak-ng and sox are required", allow_module_level=True)


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and t.daemon]
    for t in leaked:
        t.join(3.0)
    assert not [t.name for t in leaked if t.is_alive()], "audio threads leaked"
