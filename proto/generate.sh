#!/usr/bin/env bash
# Regenerates the Go code beside the .proto files with buf and local
# plugins, at the versions pinned in the Makefile (`make proto`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec make proto
