#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: system tools the tests drive for real
# (git, git daemon, dpkg, gpg, ssh-keygen, age, the daemons of the example fleet,
# headless chromium and its driver), a virtualenv with the project and its test
# extra, then pytest. Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each tool the tests drive for real, as "file it installs:Debian package". The first
# group is git, dpkg, gpg, ssh-keygen and age (whose files reconciler's secrets are);
# the second the daemons that read the example fleet's files
# (tests/test_example_daemons*.py, tests/daemon_node.py) and bubblewrap, the sandbox
# checks run in under another root and in `plan --check`; the third the browser that
# loads the fleet page (tests/test_fleet_web.py).
tools=(
    /usr/bin/git:git /usr/bin/dpkg-deb:dpkg /usr/bin/dpkg-query:dpkg /usr/bin/gpg:gnupg
    /usr/bin/ssh-keygen:openssh-client /usr/bin/age:age /usr/bin/age-keygen:age
    /usr/sbin/nginx:nginx /usr/sbin/sshd:openssh-server /usr/sbin/chronyd:chrony
    /usr/sbin/mariadbd:mariadb-server /usr/bin/memcached:memcached
    /usr/bin/memcstat:libmemcached-tools /usr/sbin/logrotate:logrotate /usr/bin/crontab:cron
    /usr/bin/systemd-analyze:systemd /usr/bin/python3:python3 /usr/bin/nsenter:util-linux
    /bin/ip:iproute2 /usr/bin/bwrap:bubblewrap
    /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver
)
missing=()
for tool in "${tools[@]}"; do
    [ -x "${tool%%:*}" ] || missing+=("${tool##*:}")
done
git_daemon="$(git --exec-path 2>/dev/null || true)/git-daemon"
[ -x "$git_daemon" ] || missing+=(git)

# Installs packages without starting their daemons: on a machine without a running init
# (a container) their maintainer scripts would fail or start them half-way, and on one
# with systemd they would take ports 22, 80, 3306 and 11211 for nothing. The tests start
# each daemon themselves, in namespaces of their own. mariadb-server's postinst still
# initialises /var/lib/mysql (it does not create /var/log/mysql: the example fleet does).
install_quietly() {
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# scripts/test.sh: no daemon starts while it installs packages.\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    local status=0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >/dev/null || status=$?
    [ -z "$made_policy" ] || rm -f "$policy"
    return "$status"
}

if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing system tools for the tests: ${packages[*]}"
        install_quietly "${packages[@]}"
    else
        echo "missing Debian packages: ${packages[*]} (install them as root with apt-get)" >&2
        exit 1
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
# The tests start hundreds of Python processes (the CLI where a process is the point,
# git hooks, agents, pushers): with PYTHONDONTWRITEBYTECODE set and the sources changed
# since their bytecode was written, each would compile every module it imports again.
.venv/bin/python -m compileall -q reconciler tests bench
# Each xdist worker imports every test module, which pytest rewrites (its asserts) and
# keeps in tests/__pycache__, unless PYTHONDONTWRITEBYTECODE is set: then all four
# workers rewrite all of them on every run, 14 of a start's 24 CPU-seconds. A clean
# clone has none kept yet: one collection keeps them before the workers start.
unset PYTHONDONTWRITEBYTECODE
if ! compgen -G 'tests/__pycache__/*-pytest-*.pyc' >/dev/null; then
    .venv/bin/python -m pytest -q -n0 -p no:cacheprovider --collect-only >/dev/null || true
fi
# mypy (tests/test_code_quality.py) keeps what it learnt of each module in a cache that
# it checks against the sources' content: one per user rather than per clone, so a
# clean clone checks in under a second instead of 11 CPU-seconds of a cold start.
export MYPY_CACHE_DIR="${MYPY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reconciler/mypy}"
# The tests make about 200,000 files and directories in a run (repositories, node images,
# copies of the example fleet, browser profiles, unpacked packages), some 800 MB. On this
# project's 2-core machine a directory made on ext4 costs 80 times one made on tmpfs,
# and the suite takes a fifth longer with its temporary files there. When /dev/shm is
# a tmpfs with room to spare, the run's temporary files go there: pytest's (a short path
# of this user and clone, as gpg-agent's socket must fit in 108 bytes under it) and
# every program's (TMPDIR). They are emptied at the next run's start, and removed after
# a run that passed.
basetemp=()
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ] &&
        [ "$(df --output=avail /dev/shm 2>/dev/null | tail -1)" -ge $((4 * 1024 * 1024)) ]; then
    scratch="/dev/shm/rt-$(id -u)-$(pwd -P | sha1sum | cut -c1-8)"
    rm -rf -- "$scratch"
    mkdir -p -m 0700 "$scratch/tmp"
    export TMPDIR="$scratch/tmp"
    basetemp=(--basetemp "$scratch/p")
fi
status=0
.venv/bin/python -m pytest -q "${basetemp[@]}" "$@" || status=$?
if [ "$status" -eq 0 ] && [ ${#basetemp[@]} -gt 0 ]; then
    rm -rf -- "$scratch"
fi
exit "$status"
