#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: system tools the tests drive for real
# (git, git daemon, dpkg, gpg, ssh-keygen), a virtualenv with the project and its test
# extra, then pytest. Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in git dpkg-deb dpkg-query gpg ssh-keygen; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -x "$(git --exec-path 2>/dev/null)/git-daemon" ] || missing+=(git-daemon)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing system tools for the tests: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git dpkg gnupg openssh-client >/dev/null
    else
        echo "missing tools: ${missing[*]} (install git, dpkg, gnupg, openssh-client)" >&2
        exit 1
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
exec .venv/bin/python -m pytest -q "$@"
