#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine (run as root).
#   setup.sh main   the venv with the package alone: what the main job (the
#                   seed lab) needs, without the tests' packages
#   setup.sh        (or "test") also the Debian packages the tests and the
#                   real-mode daemon use, and the package's test extra
# Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}
case "$mode" in main|test) ;; *) echo "setup: unknown mode '$mode' (main or test)" >&2; exit 2 ;; esac

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
main_stamp=.venv/.dmvpn-installed-main
if [ ! -f "$main_stamp" ] || [ pyproject.toml -nt "$main_stamp" ]; then
  echo "setup: installing the package into .venv" >&2
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e .
  touch "$main_stamp"
fi
[ "$mode" = main ] && exit 0

need_apt=()
command -v tshark >/dev/null 2>&1 || need_apt+=(tshark)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v ping >/dev/null 2>&1 || need_apt+=(iputils-ping)
command -v sysctl >/dev/null 2>&1 || need_apt+=(procps)        # real-mode tests, netlab: per-namespace sysctls
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)   # real-mode tests: the not-root check
command -v iperf3 >/dev/null 2>&1 || need_apt+=(iperf3)          # bench/throughput.py
# real mode's routing (dmvpn.runtime.real.frr, tests/test_frr_real.py): FRR's zebra, ospfd, bgpd and vtysh
[ -x /usr/lib/frr/zebra ] && [ -x /usr/lib/frr/ospfd ] && [ -x /usr/lib/frr/bgpd ] \
  && command -v vtysh >/dev/null 2>&1 || need_apt+=(frr)
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

stamp=.venv/.dmvpn-installed-test
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing the test packages into .venv" >&2
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
