"""Hostile bytes: tcpdump's fuzz regressions and 100,000+ deterministic
mutations of valid packets give a message or DecodeError, nothing else."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import isakmp_samples as S
from dmvpn.cli.decode_cmd import decode_capture
from dmvpn.crypto.ike_algorithms import ike_cipher
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import classify_udp4500, decode_message, decrypt_message, encrypt_message
from dmvpn.wire.pcap_reader import read_frames, udp_datagram

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps"
FUZZ = PCAPS / "tcpdump" / "fuzz_regressions"
KEY, IV = bytes(range(16)), bytes(16)
CIPHER = ike_cipher(7)


def _seeds() -> list[bytes]:
    seeds = [b().encode() for b in S.ALL]
    for name in ("tcpdump/ISAKMP_sa_setup.pcap", "wireshark/ikev1-bug-12620.pcapng.gz",
                 "strongswan/ike_v1_strongswan.pcap"):
        for f in read_frames(PCAPS / name):
            d = udp_datagram(f)
            if d is not None and d.dport == 500:
                seeds.append(d.payload)
    return seeds


SEEDS = _seeds()


def _decode(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


def test_fuzz_regression_captures() -> None:
    files = sorted(FUZZ.glob("*.pcap*"))
    assert len(files) >= 10, f"fuzz regressions missing under {FUZZ}"
    n = 0
    for path in files:
        decode_capture(path)  # must not raise: errors become records
        for frame in read_frames(path):
            try:
                d = udp_datagram(frame)
            except DecodeError:
                continue
            if d is None:
                continue
            n += 1
            _decode(d.payload)
            _decode(d.payload[4:])
            with contextlib.suppress(DecodeError):
                classify_udp4500(d.payload)
    assert n >= 10


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            del b[rng.randrange(len(b) + 1):]
        elif op == 3:
            i = rng.randrange(len(b) + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4 and len(b) >= 4:  # hit a length-ish 16-bit field
            i = rng.randrange(len(b) - 1)
            b[i:i + 2] = rng.choice([b"\x00\x00", b"\x00\x03", b"\xff\xff", b"\x00\x04",
                                     bytes([0, rng.randrange(256)])])
        elif op == 5 and len(b) >= 28:  # keep the header length consistent
            b[24:28] = len(b).to_bytes(4, "big")
    return bytes(b)


def test_100k_deterministic_mutations() -> None:
    rng = random.Random(20261129)
    for i in range(100_000):
        _decode(_mutate(rng, SEEDS[i % len(SEEDS)]))


def test_mutated_ciphertext_decrypts_or_decode_error() -> None:
    rng = random.Random(7)
    wires = [encrypt_message(b(), CIPHER, KEY, IV)[0] for b in S.ALL]
    for i in range(5_000):
        with contextlib.suppress(DecodeError):
            decrypt_message(_mutate(rng, wires[i % len(wires)]), CIPHER, KEY, IV)


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_hypothesis_mutations(seed: bytes, data) -> None:
    i = data.draw(st.integers(0, len(seed)))
    junk = data.draw(st.binary(max_size=40))
    cut = data.draw(st.integers(0, len(seed)))
    _decode(seed[:i] + junk + seed[i + len(junk):])
    _decode(seed[:cut])


@settings(max_examples=500, derandomize=True, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_hypothesis_random_bytes(blob: bytes) -> None:
    _decode(blob)
    _decode(S.main_mode_1().encode()[:28] + blob)
