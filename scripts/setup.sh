#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine (run as root):
# Debian packages the tests and the real-mode daemon use, then a venv with
# the package and its test dependencies. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v tshark >/dev/null 2>&1 || need_apt+=(tshark)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v ping >/dev/null 2>&1 || need_apt+=(iputils-ping)
command -v sysctl >/dev/null 2>&1 || need_apt+=(procps)        # real-mode tests, netlab: per-namespace sysctls
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)   # real-mode tests: the not-root check
command -v iperf3 >/dev/null 2>&1 || need_apt+=(iperf3)          # bench/throughput.py
# tests/test_real_strongswan.py: strongSwan as the reference peer (../shared/lab/strongswan_peer.sh)
[ -x /usr/lib/ipsec/charon ] && command -v swanctl >/dev/null 2>&1 \
  && [ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] \
  || need_apt+=(strongswan-charon strongswan-swanctl libcharon-extra-plugins)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install: ${need_apt[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
  echo "setup: installing ${need_apt[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.dmvpn-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
