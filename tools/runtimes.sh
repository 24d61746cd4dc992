#!/usr/bin/env bash
# The LiteRT builds the runtime-matrix tests and tools/measure_builds.py compare with, beside the
# one installed with refnet: tflite-runtime 2.14.0 (x86-64) in its own venv, and ai-edge-litert
# 2.3.0 and tflite-runtime 2.14.0 in emulated aarch64 Pythons (../shared/tools/arm-litert.sh: qemu
# user mode, needs root).
#   tools/runtimes.sh DIR   ->  DIR/tfl214/bin/python, DIR/arm23/python, DIR/arm214/python
set -euo pipefail
D=${1:?usage: tools/runtimes.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$D"
if [ ! -x "$D/tfl214/bin/python" ]; then
    python -m venv "$D/tfl214"
    "$D/tfl214/bin/pip" install -q --disable-pip-version-check tflite-runtime==2.14.0 numpy==1.26.4
fi
[ -x "$D/arm23/python" ] || bash "$HERE/../../shared/tools/arm-litert.sh" "$D/arm23" >/dev/null
[ -x "$D/arm214/python" ] || \
    bash "$HERE/../../shared/tools/arm-litert.sh" "$D/arm214" tflite-runtime==2.14.0 numpy==1.26.4 >/dev/null
echo "runtimes ready: REFNET_TFLITE_RUNTIME_PYTHON=$D/tfl214/bin/python REFNET_ARM_LITERT_PYTHON=$D/arm23/python" \
     "REFNET_ARM_TFLITE_RUNTIME_PYTHON=$D/arm214/python"
