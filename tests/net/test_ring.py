"""test_ring: gossip across hops between 8 real nodes that are not a full
mesh (issue 4).

  1. Node 0 founds a room; nodes 1..7 join by invite.
  2. All restart with --no-dial and static --peer links that make a ring
     0-1-2-3-4-0 with a chain 4-5-6-7 hanging off it: node 7 talks only to
     node 6. /who on node 7 shows only its neighbour online.
  3. N messages (500 x KITH_NET_SCALE) from random members: every node ends
     with every message exactly once, in order per author.
  4. Nodes 2 and 6 are killed with SIGKILL; the others keep sending (node 7
     is cut off meanwhile); 2 and 6 restart; every node catches up completely.

usage: python3 test_ring.py PATH/TO/kith
"""

import os
import random
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from kithnet import log  # noqa: E402

N_NODES = 8
LINKS = {0: [1], 1: [2], 2: [3], 3: [4], 4: [0, 5], 5: [6], 6: [7], 7: []}
TOK_RE = re.compile(r"^\[\d\d:\d\d\] <(\S+)> (g-n(\d+)-(\d+))$")


ROOMS_RE = re.compile(r"^\* ring\s+\d+ members?, \d+ online, (\d+) messages?")


def room_count(node):
    for l in node.command("/rooms", timeout=30):
        m = ROOMS_RE.match(l)
        if m:
            return int(m.group(1))
    return -1


def history_tokens(node, expect, timeout):
    """Wait (bounded) until the node holds `expect` messages and has stopped
    receiving, then read /history once; returns [(author, number)] in
    history order. Waiting first keeps live message lines, which look like
    history lines, from landing in the middle of the /history output."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        count = room_count(node)
        if count >= expect and count == last:
            break
        last = count
        time.sleep(1.0)
    lines = node.command("/history %d" % (expect + 200), timeout=60)
    toks = []
    for l in lines:
        m = TOK_RE.match(l)
        if m:
            toks.append((int(m.group(3)), int(m.group(4))))
    return toks


def check_all(t, nodes, sent, label, timeout):
    expect = len(sent)
    want = set(sent)
    for n in nodes:
        toks = history_tokens(n, expect, timeout)
        got = set(toks)
        t.check(got == want, "%s: %s: all %d messages" % (n.name, label, expect),
                "missing %d, e.g. %s" % (len(want - got), sorted(want - got)[:8]))
        t.check(len(toks) == len(got), "%s: %s: none twice" % (n.name, label),
                "%d duplicates" % (len(toks) - len(got)))
        last = {}
        disorder = 0
        for a, i in toks:
            if i <= last.get(a, 0):
                disorder += 1
            last[a] = i
        t.check(disorder == 0, "%s: %s: in order per author" % (n.name, label),
                "%d out of order" % disorder)


def body(t):
    rng = random.Random(4)
    nodes = [t.node("n%d" % i) for i in range(N_NODES)]
    for n in nodes:
        n.start()
    t.step("node 0 founds the room, 1..7 join")
    kithnet.form_room(t, nodes[0], nodes[1:], room="ring")

    t.step("restart as a ring with a chain: no dialing, static links only")
    for n in nodes:
        n.quit()
    for i, n in enumerate(nodes):
        extra = ["--no-dial"]
        for p in LINKS[i]:
            extra += ["--peer", nodes[p].addr]
        n.extra_args = extra
        n.restart()
    for n in nodes:
        n.wait_banner()
    # Wait until node 7 sees its one neighbour, and the ring is up.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        online7 = [w[0] for w in nodes[7].who() if w[3] == "online"]
        online0 = [w[0] for w in nodes[0].who() if w[3] == "online"]
        if online7 == ["n6"] and sorted(online0) == ["n1", "n4"]:
            break
        time.sleep(0.5)
    t.check(online7 == ["n6"], "n7 is linked to n6 only", "online: %s" % online7)
    t.check(sorted(online0) == ["n1", "n4"], "n0 is linked to n1 and n4 only",
            "online: %s" % online0)

    count = kithnet.scale(500, 40)
    t.step("%d messages from random members" % count)
    seq = {i: 0 for i in range(N_NODES)}
    sent = []
    for k in range(count):
        i = rng.randrange(N_NODES)
        seq[i] += 1
        nodes[i].send("g-n%d-%04d" % (i, seq[i]))
        sent.append((i, seq[i]))
        if k % 50 == 49:
            time.sleep(0.05)
    check_all(t, nodes, sent, "first round", 120)

    t.step("kill -9 n2 and n6, keep sending, restart them")
    nodes[2].kill(signal.SIGKILL)
    nodes[6].kill(signal.SIGKILL)
    more = kithnet.scale(200, 20)
    for k in range(more):
        i = rng.choice([0, 1, 3, 4, 5, 7])
        seq[i] += 1
        nodes[i].send("g-n%d-%04d" % (i, seq[i]))
        sent.append((i, seq[i]))
    time.sleep(2)
    nodes[2].restart()
    nodes[6].restart()
    nodes[2].wait_banner()
    nodes[6].wait_banner()
    check_all(t, nodes, sent, "after the restarts", 180)
    for n in nodes:
        n.quit()


if __name__ == "__main__":
    kithnet.Test("test_ring", deadline_s=800).run(body)
