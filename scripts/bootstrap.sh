#!/usr/bin/env bash
# Install Amend into ./.venv (once; again only when pyproject.toml changes).
#   scripts/bootstrap.sh          the app and the CLI
#   scripts/bootstrap.sh --test   also pytest, Playwright and Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($python --version)" >&2
  "$python" -m venv .venv
fi
stamp=".venv/.amend-installed${extras}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Amend$extras (torch==2.14.1 and torchvision==0.29.1 are pinned in pyproject.toml)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".$extras"
  echo "$want" > "$stamp"
fi
if [ -n "$extras" ] && [ ! -x /usr/bin/chromium ]; then
  echo "bootstrap: installing Debian's chromium for the browser tests" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  else echo "bootstrap: cannot install chromium (not root); the browser tests will be skipped" >&2
  fi
fi
