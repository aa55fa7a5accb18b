"""Suite-wide hygiene: no test leaves agentd's log handlers installed for the next one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_leftover_log_handlers() -> Iterator[None]:
    # The demo, the benchmarks and the in-process daemon tests call setup_logging();
    # its handler writes to the capture fd of the test that installed it.
    from agentd.logs import shutdown_logging

    shutdown_logging()
    yield
    shutdown_logging()
