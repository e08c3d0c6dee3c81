#!/usr/bin/env bash
# The README's first command: install Amend, build the sample projects from sample_data/ with the
# offline embedders, and start the app on them at http://127.0.0.1:8501 (pass --port N to change).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/amend demo --dir .amend "$@"
