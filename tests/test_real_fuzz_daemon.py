"""bench/fuzz_daemon.py's short mode: 20,000 hostile packets over every
protocol (ISAKMP, IKEv2, ESP, ESP-in-UDP, clear GRE/NHRP) and hostile
control-socket clients against the hub daemon in namespaces, with the spoke
keeping a real tunnel up. The invariants of the long run hold: no crash, no
traceback, nothing in clear leaving the hub, nothing injected into its
tunnel, a ping across the tunnel after every batch, RSS bounded; and the
tool leaves no namespace or process behind. Run under
``flock /tmp/dmvpn-netns.lock`` like the other namespace tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dmvpn.runtime.real.control import ControlClientError, send_command

sys.path.insert(0, str(Path(__file__).parent / "data" / "real"))
from real_lab import require_root_tools, sh, wait_for

ROOT = Path(__file__).resolve().parents[1]


def test_short_fuzz_run_keeps_every_invariant():
    require_root_tools("ping")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz_daemon.py"), "--packets", "20000",
                           "--rounds", "2", "--control", "60", "--lock-held", "--max-seconds", "120"],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.stdout, proc.stderr
    r = json.loads(proc.stdout)
    assert r["stopped_by"] == "count", (r["stopped_by"], proc.stderr[-2000:])
    assert r["total_sent"] >= 20000 and all(r["sent"][p] >= 4000 for p in ("isakmp", "ikev2", "esp", "esp-udp", "gre"))
    # paced below what the hub drains: every datagram reached the daemon
    assert r["processed_by_daemon"]["esp"] == r["sent"]["esp"] and r["processed_by_daemon"]["gre"] == r["sent"]["gre"]
    assert r["crashes"] == [] and r["tracebacks_in_log"] == [] and r["engine_errors"] == []
    assert r["in_clear_count"] == 0, r["in_clear"]
    assert r["hub_outgoing_frames"].get("esp", 0) >= 3 * len(r["batches"])   # the Echo replies, encrypted
    assert r["injected_into_tunnel"] == []
    assert len(r["batches"]) == 12 and all(b["ping_ok"] for b in r["batches"]), r["batches"]
    # ESP decapsulated = the pings' Echos only: no replay, no forged packet got through
    assert r["ipsec_counters_after"]["decaps"] - r["ipsec_counters_before"]["decaps"] == 3 * len(r["batches"])
    assert r["rss_growth_kb"] < 10 * 1024
    assert r["ok"] is True and proc.returncode == 0
    # nothing left behind
    assert set(r["namespaces"]) == {n for n in r["namespaces"] if n.startswith("dmvpn-fz")}
    assert not set(r["namespaces"]) & set(sh("ip", "netns", "list").stdout.split())
    for pid in r["daemon_pids"].values():
        assert not Path(f"/proc/{pid}").exists() or " Z " in Path(f"/proc/{pid}/stat").read_text()


def test_interrupted_fuzz_run_removes_what_it_made():
    """Ctrl-C mid-campaign: the tool reports, stops both daemons by PID and
    deletes its namespaces."""
    require_root_tools("ping")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fuzz_daemon.py"), "--packets", "2000000",
                             "--lock-held"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    prefix = f"dmvpn-fz{proc.pid}-"
    try:
        wait_for(lambda: sum(ns.startswith(prefix) for ns in sh("ip", "netns", "list").stdout.split()) == 2
                 and "Runtime" in _runtime(prefix), 60, "the campaign's daemons")
        time.sleep(3.0)                        # into the first batch
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = json.loads(out)
    assert r["stopped_by"] == "interrupted" and proc.returncode == 1, (r["stopped_by"], err[-1000:])
    assert r["namespaces"] == [prefix + "hub", prefix + "spoke"]
    assert not [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith(prefix)]
    for pid in r["daemon_pids"].values():
        assert not Path(f"/proc/{pid}").exists() or " Z " in Path(f"/proc/{pid}/stat").read_text()


def _runtime(prefix: str) -> str:
    """``show runtime`` of the campaign's hub, once its control socket answers."""
    for sock in Path(tempfile.gettempdir()).glob(f"dmvpn-fuzz-*/{prefix[6:-1]}/hub.sock"):
        try:
            return send_command(sock, "show runtime", timeout=2.0)
        except ControlClientError:
            return ""
    return ""
