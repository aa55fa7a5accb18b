#!/usr/bin/env bash
# Set everything up, then run the demo conversation: the daemon with the simulated mic and
# speaker against the local AssemblyAI/OpenAI/ElevenLabs emulators.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/agentd demo --out out/demo "$@"
