#!/usr/bin/env bash
# The README's main job: the seed lab (hub + spoke from ../shared/seed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main   # the package alone: no test packages
exec .venv/bin/dmvpn lab seed "$@"
