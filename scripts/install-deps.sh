#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, idempotently:
# libolm 3.2.13 (Debian libolm-dev/libolm3) for the interop tests.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
dpkg -s libolm-dev >/dev/null 2>&1 || missing+=(libolm-dev)
dpkg -s libolm3 >/dev/null 2>&1 || missing+=(libolm3)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
