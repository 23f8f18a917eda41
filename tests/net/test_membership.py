"""test_membership: four real kith nodes on loopback; membership commands.

  1. A creates "bookclub" and invites B, C, D; A makes B an admin (/op).
  2. A removes C (/kick): C's node says so; what B says afterwards never
     reaches C, and what C says afterwards reaches no one.
  3. A (the founder) leaves: the others rekey; B and D agree on the
     membership (same /who and safety number) and keep talking.

usage: python3 test_membership.py PATH/TO/kith
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402

SAFETY_RE = r"^\* safety number ([0-9 ]+) \(epoch (\d+)\)"


def said(nick, text):
    return r"^\[\d\d:\d\d\] <%s> %s$" % (re.escape(nick), re.escape(text))


def safety(node):
    m = node.send("/who")
    s = node.wait_for(SAFETY_RE, 20, since=m)
    return s.group(1), int(s.group(2))


def body(t):
    a = t.node("A", nick="alice").start()
    b = t.node("B", nick="bob").start()
    c = t.node("C", nick="carol").start()
    d = t.node("D", nick="dave").start()
    nodes = [a, b, c, d]

    t.step("form the room; alice makes bob an admin")
    kithnet.form_room(t, a, [b, c, d])
    kithnet.wait_online(nodes, 30)
    m = a.send("/op bob")
    b.wait_for(r"^\* alice made you an admin in bookclub$", 30)
    t.check(True, "B: * alice made you an admin in bookclub")
    d.wait_for(r"^\* alice made bob an admin in bookclub$", 30)
    t.check(True, "D: sees bob made an admin")
    t.step("alice removes carol")
    mc = c.mark()
    m = a.send("/kick carol")
    a.wait_for(r"^\* carol was removed from bookclub by you$", 20, since=m)
    t.check(True, "A: * carol was removed from bookclub by you")
    c.wait_for(r"^\* you were removed from bookclub by alice$", 30, since=mc)
    t.check(True, "C: * you were removed from bookclub by alice")
    for x in (b, d):
        x.wait_for(r"^\* carol was removed from bookclub by alice$", 30)
        t.check(True, "%s: sees carol removed" % x.name)
    m = c.send("carol still here?")
    t.check(c.wait_for(r"^! ", 10, since=m) is not None, "C: can't send any more")
    mb = b.send("after carol left")
    for x in (a, d):
        x.wait_for(said("bob", "after carol left"), 30)
        t.check(True, "%s: reads bob's message of the new epoch" % x.name)
    time.sleep(3)
    t.check(not c.matches(said("bob", "after carol left"), since=mc),
            "C: never reads bob's message of the new epoch")
    for x in (a, b, d):
        t.check(not x.matches(said("carol", "carol still here?")),
                "%s: nothing from carol after her removal" % x.name)
    del mb

    t.step("the founder leaves; bob and dave go on")
    m = a.send("/leave")
    a.wait_for(r"^\* you left bookclub$", 20, since=m)
    for x in (b, d):
        x.wait_for(r"^\* alice left bookclub$", 30)
        x.wait_for(r"^\* \S+ rekeyed bookclub \(epoch \d+\)$", 30)
        t.check(True, "%s: alice left, the room rekeyed" % x.name)
    deadline = time.monotonic() + 30
    while True:
        sb, sd = safety(b), safety(d)
        if sb == sd or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    t.check(sb == sd, "B and D show the same safety number and epoch", "%s vs %s" % (sb, sd))
    t.check(sb[1] >= 2, "two rekeys since the start (removal, leave)", str(sb))
    t.check(sorted(w[0] for w in b.who()) == ["bob", "dave"], "B: /who lists bob and dave")
    d.send("hi bob")
    b.wait_for(said("dave", "hi bob"), 30)
    t.check(True, "B: reads dave after the founder left")
    time.sleep(2)
    t.check(not a.matches(said("dave", "hi bob")), "A: reads nothing after leaving")

    t.step("everyone quits cleanly")
    for x in nodes:
        rc = x.quit()
        t.check(rc == 0, "%s: /quit exits 0" % x.name, "rc %s" % rc)


if __name__ == "__main__":
    kithnet.Test("test_membership", deadline_s=300).run(body)
