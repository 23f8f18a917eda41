"""test_chat: three real kith nodes on loopback chat in one room.

  1. A creates "bookclub" and invites B, then (new code) C; all see each other.
  2. Each sends N messages (N = 1000 x KITH_NET_SCALE) in bursts. Every node
     must end with every message exactly once, in order per author.
  3. C quits and starts again with the same home and port: it loads the room,
     and /history gives the same messages in the same order as before; what
     A said while C was away reaches C.
  4. B is killed with SIGKILL while sending a burst; after a restart, every
     message it had shown as sent is in its history, and reaches A.

usage: python3 test_chat.py PATH/TO/kith
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from kithnet import MSG_RE, log  # noqa: E402

TOKEN_RE = re.compile(r"^([mkro])-([a-z]+)-(\d{4,})\b")
BURST = 50


def tokens_of(msgs, kind=None):
    """[(author, number, nick)] for message lines whose text is a test token."""
    out = []
    for nick, text in msgs:
        m = TOKEN_RE.match(text)
        if m and (kind is None or m.group(1) == kind):
            out.append((m.group(2), int(m.group(3)), nick))
    return out


def check_delivery(t, node, msgs, authors, n, kind="m"):
    """Every (author, i) for i in 1..n exactly once, per-author increasing,
    and shown under the author's nick."""
    toks = tokens_of(msgs, kind)
    seen = {}
    for a, i, _ in toks:
        seen[(a, i)] = seen.get((a, i), 0) + 1
    missing = [(a, i) for a in authors for i in range(1, n + 1) if (a, i) not in seen]
    dups = sorted(k for k, c in seen.items() if c > 1)
    extra = sorted(k for k in seen if k[0] not in authors or not 1 <= k[1] <= n)
    t.check(not missing, "%s: all %d messages present" % (node.name, n * len(authors)),
            "missing %d, first: %s" % (len(missing), missing[:10]))
    t.check(not dups, "%s: no message shown twice" % node.name,
            "%d duplicated, first: %s" % (len(dups), dups[:10]))
    t.check(not extra, "%s: no unexpected messages" % node.name, "first: %s" % extra[:10])
    for a in authors:
        nums = [i for (x, i, _) in toks if x == a]
        bad = [(nums[k], nums[k + 1]) for k in range(len(nums) - 1) if nums[k + 1] <= nums[k]]
        t.check(not bad, "%s: messages from %s in order" % (node.name, a),
                "out of order pairs: %s" % bad[:10])
    wrong_nick = [(a, i, nick) for (a, i, nick) in toks if nick != a]
    t.check(not wrong_nick, "%s: messages carry their author's nick" % node.name,
            "first: %s" % wrong_nick[:10])


def history(node, count, expect, timeout=60.0):
    """/history count -> [(nick, text)], waiting for `expect` message lines."""
    m = node.send("/history %d" % count)
    try:
        node.wait_count(MSG_RE, expect, timeout, since=m)
    except kithnet.Timeout as e:
        log("history: %s" % str(e).splitlines()[0])
    node.sync()
    return node.messages(since=m)


def body(t):
    n = kithnet.scale(1000)
    a = t.node("A", nick="alice").start()
    b = t.node("B", nick="bob").start()
    c = t.node("C", nick="carol").start()
    nodes = [a, b, c]
    authors = [x.nick for x in nodes]

    t.step("form the room: A creates, invites B, then C")
    kithnet.form_room(t, a, [b, c])
    if not kithnet.wait_online(nodes, 30):
        log("note: not every member shows online in /who after 30 s")

    t.step("each node sends %d messages in bursts of %d" % (n, BURST))
    marks = {x.name: x.mark() for x in nodes}
    t0 = time.monotonic()
    for start in range(1, n + 1, BURST):
        for x in nodes:
            x.send_many(["m-%s-%04d hello from %s, message %d" % (x.nick, i, x.nick, i)
                         for i in range(start, min(n, start + BURST - 1) + 1)])
        time.sleep(0.01)
    total = n * len(nodes)
    for x in nodes:
        try:
            x.wait_count(MSG_RE, total, timeout=120.0, since=marks[x.name])
        except kithnet.Timeout as e:
            log(str(e).splitlines()[0])
    log("delivery took %.1f s" % (time.monotonic() - t0))
    # A short grace period: anything late would show up as a duplicate.
    time.sleep(1.0)
    for x in nodes:
        check_delivery(t, x, x.messages(since=marks[x.name]), authors, n)

    t.step("restart C: /quit, start with the same home and port")
    before = history(c, total + 100, total)
    t.check(len(before) == total, "C: /history before restart has %d messages" % total,
            "got %d" % len(before))
    rc = c.quit()
    t.check(rc == 0, "C: /quit exits 0", "rc %s" % rc)
    away = 20
    ma = a.send_many(["o-alice-%04d while carol is away" % i for i in range(1, away + 1)])
    a.wait_count(r"^\[\d\d:\d\d\] <alice> o-alice-", away, 30, since=ma)
    c.restart()
    c.wait_banner()
    rm = c.wait_for(r"^\* room bookclub: (\d+) members?, (\d+) messages?", 30,
                   since=c.gen_start())
    t.check(rm.group(1) == "3", "C: restart loads bookclub with 3 members", rm.group(0))
    t.check(int(rm.group(2)) == total, "C: restart loads %d messages" % total, rm.group(0))
    replayed = [h for h in c.messages(gen=c.generation) if not h[1].startswith("o-")]
    t.check(not replayed, "C: history is not printed at start-up",
            "%d message lines" % len(replayed))
    after_all = history(c, total + 100, total)
    # What A said while C was away may already be there: compare the rest.
    after = [h for h in after_all if not h[1].startswith("o-")]
    t.check(len(after) == total, "C: /history after restart has %d messages" % total,
            "got %d" % len(after))
    t.check(after == before, "C: history after restart is identical (same order)",
            "first difference at %s" % next(
                (i for i, (x, y) in enumerate(zip(before, after)) if x != y),
                min(len(before), len(after))))
    check_delivery(t, c, after, authors, n)

    t.step("C catches up on what A said while it was away")
    deadline = time.monotonic() + 60
    while True:
        got = tokens_of(history(c, 200, away, timeout=2.0), "o")
        if len(got) >= away or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    t.check(sorted(i for (_, i, _) in got) == list(range(1, away + 1)),
            "C: has the %d messages A sent while C was away, once each" % away,
            "got %s" % [i for (_, i, _) in got])
    t.check([i for (_, i, _) in got] == sorted(i for (_, i, _) in got),
            "C: ...in order")

    t.step("chat after the restart")
    m_a, m_b = a.mark(), b.mark()
    mc = c.send("r-carol-0001 back again")
    c.wait_for(r"^\[\d\d:\d\d\] <carol> r-carol-0001\b", 20, since=mc)
    for x, mk in ((a, m_a), (b, m_b)):
        x.wait_for(r"^\[\d\d:\d\d\] <carol> r-carol-0001\b", 30, since=mk)
        t.check(True, "%s receives C's message after C restarted" % x.name)
    m_c = c.mark()
    a.send("r-alice-0001 welcome back")
    c.wait_for(r"^\[\d\d:\d\d\] <alice> r-alice-0001\b", 30, since=m_c)
    t.check(True, "C receives A's message after restarting")

    t.step("kill -9 B while it sends a burst")
    k = 500
    mb = b.mark()
    ma = a.mark()
    own = r"^\[\d\d:\d\d\] <bob> k-bob-\d+"
    # Write the burst in quick chunks, and kill B as soon as some of it has
    # been shown as sent, so the kill lands while lines are still coming in.
    target = 50
    for start in range(1, k + 1, 10):
        b.send_many(["k-bob-%04d burst line %d" % (i, i) for i in range(start, start + 10)])
        time.sleep(0.004)
        if len(b.lines(own, mb)) >= target:
            break
    b.wait_count(own, 1, timeout=30.0, since=mb)
    rc = b.kill(signal.SIGKILL)
    t.check(rc == -signal.SIGKILL, "B: killed by SIGKILL", "rc %s" % rc)
    shown = [i for (_, i, _) in tokens_of(b.messages(since=mb), "k")]
    log("B showed %d of %d burst messages as sent before the kill" % (len(shown), k))
    t.check(len(shown) >= 1, "B: showed some of the burst as sent")

    b.restart()
    b.wait_banner()
    b.wait_for(r"^\* room bookclub: 3 members?, \d+ messages?", 30, since=b.gen_start())
    want = total + away + 2 + len(shown)
    hist = history(b, total + k + 200, want)
    htoks = tokens_of(hist, "k")
    hnums = [i for (_, i, _) in htoks]
    lost = sorted(set(shown) - set(hnums))
    t.check(not lost, "B: every message shown as sent before the kill is in history",
            "lost %d: %s" % (len(lost), lost[:20]))
    t.check(len(hnums) == len(set(hnums)), "B: no burst message twice in history")
    t.check(all(hnums[i] < hnums[i + 1] for i in range(len(hnums) - 1)),
            "B: burst messages in order in history")
    t.check(hnums == list(range(1, len(hnums) + 1)),
            "B: history holds a prefix of the burst (no gap)",
            "numbers: %s..." % hnums[:20])
    check_delivery(t, b, [h for h in hist if TOKEN_RE.match(h[1]) and h[1][0] == "m"],
                   authors, n)

    t.step("A gets every message B showed as sent")
    try:
        a.wait_count(r"^\[\d\d:\d\d\] <bob> k-bob-\d+", len(shown), timeout=60.0, since=ma)
    except kithnet.Timeout as e:
        log(str(e).splitlines()[0])
    anums = [i for (_, i, _) in tokens_of(a.messages(since=ma), "k")]
    missing = sorted(set(shown) - set(anums))
    t.check(not missing, "A: has every burst message B showed as sent",
            "missing %d: %s" % (len(missing), missing[:20]))
    t.check(len(anums) == len(set(anums)), "A: no burst message twice")

    t.step("everyone quits cleanly")
    for x in nodes:
        rc = x.quit()
        t.check(rc == 0, "%s: /quit exits 0" % x.name, "rc %s" % rc)


if __name__ == "__main__":
    kithnet.Test("test_chat", deadline_s=800).run(body)
