#!/usr/bin/env bash
# Fetch the smart-turn v3.2 audio turn model ([turn_end] audio_model, extra `turnmodel`).
#
# The model (8.7 MB ONNX, BSD 2-Clause, Copyright (c) 2024-2026 Daily) ships inside the
# pipecat-ai wheel. This downloads that one wheel from PyPI with --no-deps (12 MB; none of
# pipecat's dependencies), takes out only the model and pipecat's LICENSE, checks the
# model's SHA-256 and puts both where agentd looks by default:
#   <venv>/share/agentd/smart-turn/smart-turn-v3.2-cpu.onnx  (+ LICENSE.pipecat)
# Idempotent: does nothing when the model is already there with the right checksum.
# Usage: scripts/fetch-turn-model.sh [path/to/venv/bin/python]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${1:-.venv/bin/python}
PIPECAT_VERSION=1.14.0  # the wheel the checksum below was taken from
MODEL=smart-turn-v3.2-cpu.onnx
SHA256=2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f

DEST=$("$PY" -c 'import sys; print(sys.prefix)')/share/agentd/smart-turn
if [ -f "$DEST/$MODEL" ] && echo "$SHA256  $DEST/$MODEL" | sha256sum -c --status; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: "pipecat-ai==$PIPECAT_VERSION" -d "$tmp" \
  2>&1 | grep -v -E "^(WARNING|DEPRECATION)" || true
wheel=$(ls "$tmp"/pipecat_ai-*.whl 2>/dev/null || true)
[ -n "$wheel" ] || { echo "fetch-turn-model: pip could not download pipecat-ai==$PIPECAT_VERSION" >&2; exit 1; }
mkdir -p "$DEST"
"$PY" - "$wheel" "$DEST" "$MODEL" <<'PYEOF'
import sys, zipfile
wheel, dest, model = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    with open(f"{dest}/{model}.part", "wb") as out:
        out.write(z.read(f"pipecat/audio/turn/smart_turn/data/{model}"))
    licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    with open(f"{dest}/LICENSE.pipecat", "wb") as out:
        out.write(z.read(licence))
PYEOF
echo "$SHA256  $DEST/$MODEL.part" | sha256sum -c --status \
  || { rm -f "$DEST/$MODEL.part"; echo "fetch-turn-model: checksum mismatch for $MODEL from pipecat-ai $PIPECAT_VERSION" >&2; exit 1; }
mv "$DEST/$MODEL.part" "$DEST/$MODEL"
echo "fetch-turn-model: $DEST/$MODEL"
