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
echo "== pytest"
.venv/bin/pytest -q -p no:cacheprovider "$@"
