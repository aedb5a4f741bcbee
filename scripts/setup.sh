#!/usr/bin/env bash
# Sets up pdquant on Debian/Ubuntu: system packages (LibTorch, Fashion-MNIST for the demo),
# npm dependencies, the native engine and the TypeScript build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS="libtorch-dev dataset-fashion-mnist"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ] && [ -z "${LIBTORCH:-}" ]; then
  echo "pdquant setup: installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

echo "pdquant setup: npm dependencies"
# onnxruntime-node's install script would fetch CUDA parts; its CPU binary ships in the package.
ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error

echo "pdquant setup: native engine and TypeScript build"
npm run --silent build
