#!/usr/bin/env bash
# One-shot set-up on a fresh Debian 12 / Raspberry Pi OS Bookworm machine, as root:
# apt packages, a venv in .venv, and agentd installed into it (editable, with extras).
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config
  libasound2-dev libasound2-plugins alsa-utils   # pyalsaaudio build + ALSA plugins/tools
  libsystemd-dev systemd                         # systemd-python build, journald, systemd-analyze
  mosquitto mosquitto-clients                    # real broker + CLI clients for the MQTT tests
  espeak-ng sox                                  # real speech/noise for emulators, sim mic, fallback
  strace                                         # tests: prove no audio file is ever written
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package enables a system broker; tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
EXTRAS=${AGENTD_EXTRAS:-dev,sim,wakeword,turnmodel}
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]" 2>&1 | grep -v -E "^(WARNING|DEPRECATION)" || true
# The audio turn model's file (only the .onnx out of the pipecat-ai wheel; see the script).
if [[ ",${EXTRAS}," == *",turnmodel,"* ]]; then
  bash scripts/fetch-turn-model.sh .venv/bin/python
fi
.venv/bin/python -c "import agentd, alsaaudio, webrtcvad, systemd.journal, paho.mqtt, gpiozero" \
  || { echo "setup: the venv is incomplete" >&2; exit 1; }
echo "setup: ready (.venv)"
