"""test_lan: LAN meetups between real kith nodes in network namespaces.

Four namespaces (A, B, C, D) are joined by a bridge that lives in a fifth;
each runs one kith. No node is given another's address for the LAN phase:

  1. Set-up (LAN off): A creates "bookclub" and invites B over the namespace
     network; C creates "secret-garden" alone. Everyone quits.
  2. A, B, C start again with --listen on a new port, so the addresses in the
     membership records are stale: A and B must find each other by beacons,
     and chat within seconds; C (in no room of theirs) connects to nobody.
     /peers shows how each peer was found. C listens on [::], A and B on one
     IPv4 address each.
  3. A capture of the beacons (tcpdump in B's namespace) contains no public
     key, fingerprint, room id, room name or nickname, and two consecutive
     beacons of one node share no tag; C's beacons go out over IPv4 and IPv6
     (from its link-local address), A's and B's over IPv4 only.
  4. Knock: A opens bookclub with /lan knock (a room op B learns too); D (a
     stranger, started before its network was up) sees it in /lan once the
     network is up, knocks, A admits, D chats with A and B.

Needs root, `ip netns` and tcpdump; otherwise it says why and counts itself
as skipped (exit 0). Everything it creates is removed at the end, always.

usage: python3 test_lan.py PATH/TO/kith
"""

import atexit
import base64
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from kithnet import MSG_RE, log  # noqa: E402

TAG = "k%d" % (os.getpid() % 100000)
BR_NS = "%s-br" % TAG
NAMES = ["a", "b", "c", "d"]
NICKS = {"a": "alice", "b": "bob", "c": "carol", "d": "dave"}
NET = "10.77.%d." % (os.getpid() % 200 + 20)
PORT1, PORT2 = 7415, 7425
_created = []  # namespaces to delete
_procs = []  # tcpdump processes


def skip(why):
    print("test_lan: skipped: %s" % why, flush=True)
    print("0 passed, 0 failed, 1 skipped", flush=True)
    sys.exit(0)


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise kithnet.Failure("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def ns_of(name):
    return "%s-%s" % (TAG, name)


def cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    while _created:
        ns = _created.pop()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def make_network():
    sh("ip", "netns", "add", BR_NS)
    _created.append(BR_NS)
    sh("ip", "-n", BR_NS, "link", "add", "br0", "type", "bridge")
    # Snooping would hold multicast back until a querier shows up.
    sh("ip", "-n", BR_NS, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
    sh("ip", "-n", BR_NS, "link", "set", "br0", "up")
    for i, name in enumerate(NAMES):
        ns = ns_of(name)
        sh("ip", "netns", "add", ns)
        _created.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p" + name,
           "netns", BR_NS)
        sh("ip", "-n", ns, "addr", "add", NET + str(i + 1) + "/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        sh("ip", "-n", BR_NS, "link", "set", "p" + name, "master", "br0")
        sh("ip", "-n", BR_NS, "link", "set", "p" + name, "up")


class NsNode(kithnet.Node):
    """A kith node run inside a network namespace."""

    def __init__(self, binary, name, ns, ip, port, lan=True):
        super().__init__(binary, name, nick=NICKS[name], port=port,
                         extra_args=[] if lan else ["--no-lan"])
        self.ns = ns
        self.ip = ip
        self.addr = "%s:%d" % (ip, port)

    def set_port(self, port, lan=True):
        self.port = port
        self.addr = "%s:%d" % (self.ip, port)
        self.extra_args = [] if lan else ["--no-lan"]

    def argv(self):
        return ["ip", "netns", "exec", self.ns] + super().argv()


def wait_line(node, regex, timeout, since=0):
    try:
        return node.wait_for(regex, timeout, since=since)
    except kithnet.Timeout:
        return None


def read_pcap(path):
    """UDP payloads to port 7416 from an Ethernet pcap, IPv4 and IPv6:
    [(src ip, bytes)]."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return out
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(pkt) >= 14 + 40 + 8 and pkt[12:14] == b"\x86\xdd":
            if pkt[14 + 6] != 17:  # next header: UDP (no extension headers)
                continue
            src = socket.inet_ntop(socket.AF_INET6, pkt[22:38])
            udp = pkt[14 + 40:]
        elif len(pkt) >= 14 + 20 + 8 and pkt[12:14] == b"\x08\x00":
            ihl = (pkt[14] & 0x0f) * 4
            if pkt[14 + 9] != 17:
                continue
            src = ".".join(str(b) for b in pkt[26:30])
            udp = pkt[14 + ihl:]
        else:
            continue
        if struct.unpack(">H", udp[2:4])[0] != 7416:
            continue
        out.append((src, udp[8:]))
    return out


def beacon_tags(payload):
    """(nonce, [tags], names) of a beacon as proto/kith.md section 8 lays it out."""
    ntags, nnames = payload[1], payload[2]
    nonce = payload[6:22]
    tags = [payload[22 + 16 * i:38 + 16 * i] for i in range(ntags)]
    return nonce, tags, nnames


def invite_ids(code):
    """The 32-byte binary strings of an invite code: room id and inviter id."""
    body = code.split(":", 1)[1]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    return [raw[i + 2:i + 34] for i in range(len(raw) - 33) if raw[i:i + 2] == b"\xc4\x20"]


def body(t):
    make_network()
    nodes = {}
    for i, name in enumerate(NAMES):
        n = NsNode(t.binary, name, ns_of(name), NET + str(i + 1), PORT1, lan=False)
        t.nodes.append(n)
        nodes[name] = n
    a, b, c, d = nodes["a"], nodes["b"], nodes["c"], nodes["d"]

    t.step("set-up over addresses, LAN off")
    fprs = {}
    for n in (a, b, c):
        n.start()
        fprs[n.name] = n.wait_for(r"\(fingerprint (\S+)\)", 30).group(1)
    a.send("/create bookclub")
    a.wait_for(r"bookclub", 20)
    a.send("/invite")
    code = a.wait_for(kithnet.INVITE_RE, 20).group(2)
    ids = invite_ids(code)
    t.require(len(ids) >= 2, "the invite holds the room id and A's id")
    b.send("/join " + code)
    t.require(wait_line(b, r"^\* .*bookclub", 30) is not None, "B joined bookclub")
    c.send("/create secret-garden")
    c.wait_for(r"secret-garden", 20)
    for n in (a, b, c):
        n.quit()

    t.step("restart on a new port with LAN on: members find each other")
    cap = os.path.join(tempfile.mkdtemp(prefix="kith-lan-cap-"), "beacons.pcap")
    dump = subprocess.Popen(["ip", "netns", "exec", b.ns, "tcpdump", "-U", "-n", "-i", "eth0",
                             "-w", cap, "udp", "port", "7416"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _procs.append(dump)
    time.sleep(1.0)  # tcpdump is listening before the first beacon
    for n in (a, b, c):
        n.set_port(PORT2)
    # C listens on every address, IPv4 and IPv6: it beacons in both.
    c.addr = "[::]:%d" % PORT2
    t0 = time.monotonic()
    for n in (a, b, c):
        n.start()
    ok = wait_line(a, r"^\* bob is online", 30) is not None
    t.require(ok, "A sees bob online with no address given (%.1f s)" % (time.monotonic() - t0))
    a.send("hello over the lan")
    m = wait_line(b, r"<alice> hello over the lan$", 20)
    t.check(m is not None, "B gets A's message (%.1f s after start)" % (time.monotonic() - t0))
    b.send("hi alice")
    t.check(wait_line(a, r"<bob> hi alice$", 20) is not None, "A gets B's answer")
    mark = a.send("/peers")
    peers = wait_line(a, r"^\* bob\s+\S+\s+found by (\S+)", 10, since=mark)
    t.check(peers is not None and peers.group(1) in ("lan", "inbound"),
            "A's /peers shows bob, found by lan or inbound",
            str(peers.group(0) if peers else a.tail(10)))
    mark = b.send("/peers")
    lines = [wait_line(b, r"^\* alice\s+\S+\s+found by (\S+)", 10, since=mark)]
    t.check(lines[0] is not None, "B's /peers shows alice")
    a_found = peers.group(1) if peers else ""
    b_found = lines[0].group(1) if lines[0] else ""
    t.check("lan" in (a_found, b_found), "one of them dialed because of a beacon",
            "%s / %s" % (a_found, b_found))
    time.sleep(12)  # a few more beacons for the capture; C has had its chance
    mark = c.send("/peers")
    t.check(wait_line(c, r"^\* no peers connected", 10, since=mark) is not None,
            "C (not a member) is connected to nobody")
    mark = a.send("/peers")
    a.sync()
    others = [l for l in a.lines(r"^\* \S+\s+\S+\s+found by", mark)
              if not l.startswith("* bob ")]
    t.check(not others, "A is connected to no one but bob", str(others))

    t.step("the capture says nothing about who is there")
    dump.send_signal(signal.SIGINT)
    try:
        dump.wait(10)
    except subprocess.TimeoutExpired:
        dump.kill()
    pk = read_pcap(cap)
    srcs = {}
    for src, p in pk:
        srcs.setdefault(src, []).append(p)
    t.require(len(pk) >= 4, "tcpdump captured beacons (%d from %d hosts)" % (len(pk), len(srcs)))
    t.check(a.ip in srcs and b.ip in srcs and c.ip in srcs, "every node beaconed",
            str(sorted(srcs)))
    v6 = [src for src in srcs if ":" in src]
    t.check(len(v6) == 1 and v6[0].startswith("fe80:"),
            "C (on [::]) also beaconed over IPv6, from its link-local address; A and B "
            "(on one IPv4 address) did not", str(sorted(srcs)))
    c4 = {beacon_tags(p)[0] for p in srcs.get(c.ip, [])}
    c6 = {beacon_tags(p)[0] for src in v6 for p in srcs[src]}
    t.check(bool(c4 & c6), "C sent the same beacons over IPv4 and IPv6 (%d, %d)"
            % (len(c4), len(c6)))
    secrets = {"fingerprint " + k: v.encode() for k, v in fprs.items()}
    for k, v in NICKS.items():
        secrets["nick " + v] = v.encode()
    for name in ("bookclub", "secret-garden"):
        secrets["room name " + name] = name.encode()
    blob = b"".join(p for _, p in pk)
    leaked = [k for k, v in secrets.items() if v in blob]
    for i, idv in enumerate(ids):
        for off in range(0, 32 - 8 + 1):
            if idv[off:off + 8] in blob:
                leaked.append("id %d (bytes %d..%d)" % (i, off, off + 8))
                break
    t.check(not leaked, "no public key, fingerprint, room id, room name or nick in %d beacons"
            % len(pk), ", ".join(leaked))
    shared = 0
    pairs = 0
    for src, ps in srcs.items():
        for p1, p2 in zip(ps, ps[1:]):
            n1, t1, _ = beacon_tags(p1)
            n2, t2, _ = beacon_tags(p2)
            pairs += 1
            if n1 == n2 or set(t1) & set(t2):
                shared += 1
    t.check(pairs >= 2 and shared == 0,
            "consecutive beacons of one node share no tag (%d pairs)" % pairs)

    t.step("knock and admit")
    a.send("/lan knock")
    t.require(wait_line(a, r"^\* you made bookclub discoverable on the LAN: knocks wait", 10)
              is not None, "A opens bookclub for knocks")
    # A room op: every member's node learns it.
    t.check(wait_line(b, r"^\* alice made bookclub discoverable on the LAN", 20) is not None,
            "B learns that bookclub is open on the LAN")
    d.set_port(PORT2)
    # D starts before its network is up: it finds the LAN when it comes up.
    sh("ip", "-n", d.ns, "link", "set", "eth0", "down")
    d.start()
    d.wait_for(r"\(fingerprint", 30)
    sh("ip", "-n", d.ns, "link", "set", "eth0", "up")
    sh("ip", "-n", d.ns, "route", "add", "224.0.0.0/4", "dev", "eth0", check=False)
    seen = None
    for _ in range(15):
        mark = d.send("/lan")
        seen = wait_line(d, r"^\* bookclub\s+knock\s+at " + re.escape(a.addr), 2, since=mark)
        if seen:
            break
        time.sleep(1)
    t.require(seen is not None, "D's /lan lists bookclub (knock) at A's address, though D "
              "started before its network was up")
    d.send("/knock bookclub")
    t.require(wait_line(a, r"^\* dave knocks on bookclub .*: /admit dave", 20) is not None,
              "A hears dave knock")
    a.send("/admit dave")
    inroom = None
    for _ in range(10):
        mark = d.send("/rooms")
        inroom = wait_line(d, r"^\* bookclub\s+3 members", 2, since=mark)
        if inroom:
            break
        time.sleep(1)
    t.require(inroom is not None, "D is in bookclub, with 3 members")
    t.check(wait_line(b, r"^\* dave joined", 20) is not None, "B hears dave joined")
    time.sleep(1)
    d.send("hello from the door")
    t.check(wait_line(a, r"<dave> hello from the door$", 20) is not None, "A gets D's message")
    t.check(wait_line(b, r"<dave> hello from the door$", 30) is not None, "B gets D's message")
    for n in (a, b, c, d):
        n.quit()


def main():
    if os.geteuid() != 0:
        skip("needs root for network namespaces")
    if not shutil.which("ip") or subprocess.run(["ip", "netns", "list"], capture_output=True
                                                ).returncode != 0:
        skip("`ip netns` is not available")
    if not shutil.which("tcpdump"):
        skip("tcpdump is not installed (tools/setup installs it)")
    probe = "%s-probe" % TAG
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        skip("cannot create a network namespace here")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    atexit.register(cleanup)
    t = kithnet.Test("test_lan", deadline_s=240)
    try:
        t.run(body)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
