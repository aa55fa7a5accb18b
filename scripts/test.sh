#!/usr/bin/env bash
# Set everything up, then run the checks CI runs: ruff, mypy on agentd/, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check agentd tests
.venv/bin/ruff format --check agentd tests
echo "== mypy"
.venv/bin/mypy agentd
# the fakes of the core's unit tests must satisfy the same Protocols as the real parts
.venv/bin/mypy --explicit-package-bases tests/conversation  # strict, from pyproject.toml
echo "== pytest"
# Two workers: most tests wait on real time (simulated audio, emulated clouds), so two
# at once finish in about half the time on 2 cores; AGENTD_TEST_WORKERS=0 runs serially.
.venv/bin/pytest -q -p no:cacheprovider -n "${AGENTD_TEST_WORKERS:-2}" "$@"
