"""Writes the seed corpora of fuzz_forward, fuzz_handshake and fuzz_gzip:
real frames in every Forward mode, handshake frames, gzip payloads.

    python3 tests/fuzz/make_forward_seeds.py tests/fuzz/corpus
"""

import gzip
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from lhtest import event_time, mp_pack  # noqa: E402

T = 1700000000 * 10**9
REC = {"message": "hello", "n": 1}


def entries(meta=False):
    head = [event_time(T), {"k": "v"}] if meta else event_time(T)
    return mp_pack([event_time(T + 1), REC]) + mp_pack([head, {"message": "two"}])


def forward_frames():
    """name -> stream; fuzz_forward's first two bytes are the arrival step."""
    step = b"\x00\x07"
    z = gzip.compress(entries()) + gzip.compress(entries(True))
    frames = {
        "message": mp_pack(["app", event_time(T), REC, {"chunk": "c1"}]),
        "message_int_time": mp_pack(["app", 1700000000, REC]),
        "message_float_time": mp_pack(["app", 1700000000.5, REC]),
        "forward": mp_pack(["app", [[event_time(T), REC], [1700000000, REC]], {"size": 2}]),
        "forward_fb2_meta": mp_pack(["app", [[[event_time(T), {"k": "v"}], REC]]]),
        "packed_bin": mp_pack(["app", entries(), {"chunk": "c2", "size": 2}]),
        "packed_str_nil_opts": b"\x93\xa3app\xdb" + struct.pack(">I", len(entries()))
        + entries() + b"\xc0",
        "packed_text": mp_pack(["app", entries(True), {"compressed": "text"}]),
        "compressed": mp_pack(["app", z, {"compressed": "gzip", "chunk": "c3"}]),
        "heartbeat_then_frame": b"\xc0" + mp_pack(["app", event_time(T), REC]),
        "deep_record": mp_pack(["app", mp_pack([event_time(T), nested(31)])]),
    }
    return {k: step + v for k, v in frames.items()}


def nested(depth):
    rec = {"m": 1}
    for _ in range(depth - 1):
        rec = {"n": rec}
    return rec


def handshake_frames():
    nonce, salt = b"0123456789abcdef", b"fedcba9876543210"
    digest = hashlib.sha512(salt + b"host" + nonce + b"fuzz key").hexdigest()
    return {
        "helo": mp_pack(["HELO", {"nonce": nonce, "auth": b"", "keepalive": True}]),
        "helo_str_nonce": mp_pack(["HELO", {"nonce": nonce.decode(), "auth": "salt"}]),
        "ping": mp_pack(["PING", "host", salt, digest, "", ""]),
        "ping_user": mp_pack(["PING", "host", salt, digest, "user", "pw"]),
        "pong_ok": mp_pack(["PONG", True, "", "server", digest]),
        "pong_refused": mp_pack(["PONG", False, "shared key mismatch", "", ""]),
    }


def gzip_inputs():
    cap = b"\x10\x00"  # 4 KiB
    one = gzip.compress(entries())
    return {
        "one_member": cap + one,
        "two_members": cap + one + gzip.compress(entries(True)),
        "empty": cap + gzip.compress(b""),
        "bomb": b"\x00\x40" + gzip.compress(b"\x00" * 200000),
        "truncated": cap + one[:-5],
    }


def main(root):
    for name, files in (("forward", forward_frames()), ("handshake", handshake_frames()),
                        ("gzip", gzip_inputs())):
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        for k, v in files.items():
            with open(os.path.join(d, k), "wb") as f:
                f.write(v)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus")
