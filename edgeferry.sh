#!/usr/bin/env bash
# edgeferry's two entry points on a fresh Debian/Ubuntu machine (run as root):
#   ./edgeferry.sh demo   set everything up, bring up the emulated lab and run the main job
#   ./edgeferry.sh test   set everything up and run the test suite
# Both are safe to run again: each step checks before it changes anything.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

APT_PACKAGES=(python3 python3-venv python3-dev gcc make git rsync curl ca-certificates nats-server
  docker.io docker-registry apache2-utils nginx debootstrap iperf3 iproute2 openssh-client procps fuse3
  qemu-user-static chromium chromium-driver)  # chromium: the UI server's browser test (Playwright)
VENV=.venv
# the installer of the virtualenv's packages (pip installs it, then it installs the rest in a
# fraction of pip's time); the lab hosts use the same pin (roles/edgeferry_agent/defaults)
UV_REQUIREMENT=uv==0.13.9
LOG_DIR=/var/log/edgeferry

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'edgeferry.sh: error: %s\n' "$*" >&2; exit "${2:-3}"; }

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts dockerd)"; }

install_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_venv() {
  local stamp="$VENV/.edgeferry-installed" want
  want=$( (sha256sum pyproject.toml; echo "$UV_REQUIREMENT") | sha256sum | cut -c1-16)
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing edgeferry and its dependencies into $VENV"
    "$VENV/bin/pip" install -q "$UV_REQUIREMENT"
    # byte code compiled now, as pip does: a run with PYTHONDONTWRITEBYTECODE set (CI machines)
    # would otherwise compile every import again in every process (the unit suite took 2.5x)
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -e '.[test]' \
      --config-setting editable_mode=compat --compile-bytecode
    echo "$want" > "$stamp"
  fi
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  if [ -d /run/systemd/system ]; then
    say "starting docker with systemd"
    systemctl start docker
  else
    say "no systemd here: starting dockerd in the background (log: $LOG_DIR/dockerd.log)"
    mkdir -p "$LOG_DIR"
    nohup dockerd >>"$LOG_DIR/dockerd.log" 2>&1 &
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
  die "the Docker engine did not answer within 60 s; see $LOG_DIR/dockerd.log"
}

setup() { need_root; install_packages; ensure_venv; ensure_docker; }

case "${1:-}" in
  setup) setup ;;
  demo)
    setup
    say "running experiments/quick.yaml on the emulated lab (brings the lab up, deploys, runs, reports)"
    "$VENV/bin/edgeferry" run experiments/quick.yaml
    ;;
  test)
    setup
    shift
    # three pytest-xdist workers by default (one test module or the shared lab's tests per unit
    # of work, heaviest first, see tests/conftest.py): about 26 min instead of about 37 in one
    # process (EDGEFERRY_TEST_WORKERS=0)
    workers="${EDGEFERRY_TEST_WORKERS:-3}"
    if [ "$workers" = 0 ]; then
      say "running the test suite"
      exec "$VENV/bin/pytest" "$@"
    fi
    parallel=("$VENV/bin/pytest" -n "$workers" --dist loadgroup --no-loadscope-reorder)
    [ "$#" -gt 0 ] && exec "${parallel[@]}" "$@"
    # the whole suite: then the timing-sensitive tests (marker `serial`: the migration fault
    # test aims faults at phases of tens of ms) alone, on a machine the other tests left idle
    say "running the test suite ($workers workers), except the tests marked serial"
    rc=0
    "${parallel[@]}" -m "not serial" || rc=$?
    say "running the tests marked serial, alone"
    "$VENV/bin/pytest" -m serial || rc=$?
    exit "$rc"
    ;;
  *) echo "usage: $0 demo|test|setup" >&2; exit 2 ;;
esac
