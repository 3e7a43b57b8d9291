#!/usr/bin/env bash
# Installs everything the suite needs on a fresh Debian machine: the Fashion-MNIST IDX
# files (Debian's dataset-fashion-mnist) and the Python package with its test and export
# extras.
# Needs only the package registries (Debian and PyPI), no other network.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist
fi

# test: pytest, ruff; export: the ONNX/LiteRT converters and runtimes the tests use.
python3 -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS:-test,export}]"
