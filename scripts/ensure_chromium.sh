#!/usr/bin/env bash
# The GraphiQL browser test (tests/gateway/test_graphiql_browser.py) drives Debian's
# chromium. Install it when it is missing; do nothing when it is there. As root (CI);
# elsewhere through sudo when there is one, else one line saying what to run.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "chromium is missing: run 'apt-get update && apt-get install -y chromium' as root" >&2
    exit 1
fi
echo "installing Debian's chromium for the GraphiQL browser test" >&2
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt run (up to 10 minutes) instead of failing on its lock.
"${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
"${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null
