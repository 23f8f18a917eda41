"""test_garbage: hostile bytes on a node's listening port.

Two nodes A and B chat in a room. Raw TCP connections to A's port then send
what a broken or hostile peer might: random bytes, a 0xFFFF length prefix
(with a few bytes, and with a whole 65535-byte frame of noise), a truncated
handshake, a zero-length frame, a plausible first handshake message followed
by a forged third one, and stalled handshakes (a truncated one, a crowd of
silent connections). Each connection must be closed by A within CLOSE_WITHIN
seconds (unless the test closed it first), and afterwards A must still run,
A and B must still chat both ways, and a new member must still be able to
join through A.

usage: python3 test_garbage.py PATH/TO/kith
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from kithnet import log  # noqa: E402

# How long A may take to drop a connection that sent garbage or stalls in the
# handshake. Garbage should be dropped at once; a stalled handshake needs a
# handshake timeout, which "a few seconds" bounds.
CLOSE_WITHIN = float(os.environ.get("KITH_NET_CLOSE_WITHIN", "15"))


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_quietly(s, data):
    """Send; a peer that already closed is fine (that is what we want)."""
    try:
        s.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
        return False


def wait_closed(s, within):
    """Read (and discard) until the peer closes; returns (closed, seconds, bytes)."""
    t0 = time.monotonic()
    got = 0
    deadline = t0 + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, time.monotonic() - t0, got
        s.settimeout(min(left, 1.0))
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError, OSError):
            return True, time.monotonic() - t0, got
        if not data:
            return True, time.monotonic() - t0, got
        got += len(data)


def hostile(t, a, what, payload, close_after=False, pause=0.0):
    """Open a connection to A, send payload; expect A to close it."""
    s = connect(a.port)
    try:
        send_quietly(s, payload)
        if pause:
            time.sleep(pause)
        if close_after:
            s.close()
            t.check(True, "%s: sent %d bytes and closed" % (what, len(payload)))
            return
        closed, secs, got = wait_closed(s, CLOSE_WITHIN)
        t.check(closed, "%s: A closes the connection (%.1f s, %d bytes back)" % (what, secs, got),
                "still open after %.0f s" % CLOSE_WITHIN)
    finally:
        s.close()
    t.require(a.running(), "A still runs after: %s" % what, a.tail())


def chat_both_ways(t, a, b, tag):
    ma, mb = a.mark(), b.mark()
    a.send("g-alice-%s from A" % tag)
    b.wait_for(r"^\[\d\d:\d\d\] <alice> g-alice-%s\b" % tag, 30, since=mb)
    b.send("g-bob-%s from B" % tag)
    a.wait_for(r"^\[\d\d:\d\d\] <bob> g-bob-%s\b" % tag, 30, since=ma)
    t.check(True, "A and B chat both ways (%s)" % tag)


def body(t):
    rnd = os.urandom
    a = t.node("A", nick="alice").start()
    b = t.node("B", nick="bob").start()

    t.step("A creates a room, B joins, they chat")
    kithnet.form_room(t, a, [b])
    chat_both_ways(t, a, b, "before")

    t.step("hostile connections to A")
    hostile(t, a, "8 KiB of random bytes", rnd(8192))
    hostile(t, a, "0xFFFF length then 5 bytes, then close", b"\xff\xff" + rnd(5),
            close_after=True)
    hostile(t, a, "0xFFFF length then 5 bytes, then stall", b"\xff\xff" + rnd(5))
    hostile(t, a, "0xFFFF length and 65535 random bytes", b"\xff\xff" + rnd(65535))
    hostile(t, a, "zero-length frame", b"\x00\x00")
    hostile(t, a, "zero-length frames x100", b"\x00\x00" * 100)
    hostile(t, a, "truncated handshake (10 of 34 bytes), then close",
            struct.pack(">H", 32) + rnd(8), close_after=True)

    # A well-formed first Noise XX message (an ephemeral key, empty payload),
    # then a second message of noise: A answers the first and must reject
    # the forged third (its static key will not decrypt).
    s = connect(a.port)
    try:
        send_quietly(s, struct.pack(">H", 32) + rnd(32))
        s.settimeout(5.0)
        try:
            reply = s.recv(65536)
        except (socket.timeout, OSError):
            reply = b""
        log("plausible handshake: A answered %d bytes" % len(reply))
        send_quietly(s, struct.pack(">H", 64) + rnd(64))
        closed, secs, _ = wait_closed(s, CLOSE_WITHIN)
        t.check(closed, "forged handshake message 3: A closes (%.1f s)" % secs)
    finally:
        s.close()
    t.require(a.running(), "A still runs after a forged handshake", a.tail())

    # Stalled peers can only be dropped by a handshake timeout: open them all
    # at once (one wait instead of one per case).
    t.step("stalled handshakes: a truncated one, and 20 silent connections")
    trunc = connect(a.port)
    send_quietly(trunc, struct.pack(">H", 32) + rnd(8))
    crowd = [connect(a.port) for _ in range(20)]
    try:
        t0 = time.monotonic()
        ok, secs, _ = wait_closed(trunc, CLOSE_WITHIN)
        t.check(ok, "truncated handshake (10 of 34 bytes), then stall: A closes it (%.1f s)"
                % secs, "still open after %.0f s" % CLOSE_WITHIN)
        closed = 0
        for s in crowd:
            ok, _, _ = wait_closed(s, max(0.5, CLOSE_WITHIN - (time.monotonic() - t0)))
            closed += ok
        t.check(closed == len(crowd), "A closes all 20 silent connections within %.0f s"
                % CLOSE_WITHIN, "%d of 20 closed" % closed)
    finally:
        trunc.close()
        for s in crowd:
            s.close()
    t.require(a.running(), "A still runs after the stalled handshakes", a.tail())

    t.step("after the garbage")
    chat_both_ways(t, a, b, "after")
    c = t.node("C", nick="carol").start()
    c.wait_banner()
    code = a.invite()
    m = c.send("/join " + code)
    jm = c.wait_for(r"^(\* joined room \S+ \(\d+ members?\)|! join failed.*)$", 60, since=m)
    t.check(jm.group(0).startswith("* joined"), "C can still join through A", jm.group(0))

    t.step("everyone quits cleanly")
    for x in (a, b, c):
        rc = x.quit()
        t.check(rc == 0, "%s: /quit exits 0" % x.name, "rc %s" % rc)


if __name__ == "__main__":
    kithnet.Test("test_garbage", deadline_s=600).run(body)
