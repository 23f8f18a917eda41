"""test_edits: message edits, deletes and reactions between two real nodes.

A and B share a room. A edits and deletes its own messages, B reacts and
takes a reaction back; both see each change live in the agreed words, and
/history shows the room as it reads now ((edited), [message deleted],
reactions under their message). B can't edit or delete A's message. After a
restart A's /history reads the same (the view is rebuilt from the log).

usage: python3 test_edits.py PATH/TO/kith
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402

TIME = r"\[\d\d:\d\d\]"
UP = "\U0001F44D"  # thumbs up
ARROW = "\u21b3"


def only(lines, pattern):
    return [l for l in lines if re.search(pattern, l)]


def history(n, count=10, ids=False):
    out = n.command("/history %d%s" % (count, " ids" if ids else ""))
    return [l for l in out if re.search(TIME, l) or ARROW in l]


def body(t):
    a = t.node("A", nick="alice").start()
    b = t.node("B", nick="bob").start()
    kithnet.form_room(t, a, [b])
    kithnet.wait_online([a, b])

    t.step("messages to act on")
    mb = b.mark()
    for text in ("first words", "second thoughts", "third time"):
        ma = a.send(text)
        a.wait_for(r"^%s <alice> %s$" % (TIME, text), 20, since=ma)
    b.wait_for(r"^%s <alice> third time$" % TIME, 20, since=mb)

    t.step("edit")
    mb = b.mark()
    ma = a.send("/edit 2 second thoughts, revised")
    a.wait_for(r"^%s \* alice edited: second thoughts, revised$" % TIME, 20, since=ma)
    b.wait_for(r"^%s \* alice edited: second thoughts, revised$" % TIME, 20, since=mb)
    t.check(True, "A edits its second-last message: both see '* alice edited: ...' live")
    mb = b.mark()
    a.send("/edit third time")
    b.wait_for(r"^%s \* alice edited: third time$" % TIME, 20, since=mb)
    t.check(True, "/edit without N edits A's last message")
    # /edit 3: A's third-last message, the first.
    mb = b.mark()
    a.send("/edit 3 first words (fixed)")
    b.wait_for(r"^%s \* alice edited: first words \(fixed\)$" % TIME, 20, since=mb)
    t.check(True, "/edit 3 edits A's third-last message")
    out = b.command("/edit mine now")
    t.check(only(out, r"^! you have no message here to change"),
            "B has no message of its own to edit", str(out))

    t.step("reactions")
    ma = a.mark()
    b.send("/react 2 " + UP)
    a.wait_for(r"^%s \* bob reacted %s to alice: \"second thoughts, revised\"$" % (TIME, UP),
               20, since=ma)
    t.check(True, "B reacts to the second-last message; A sees whose and to what")
    ma = a.mark()
    mb = b.send("/react +1")
    a.wait_for(r"^%s \* bob reacted \+1 to alice: \"third time\"$" % TIME, 20, since=ma)
    b.wait_for(r"^%s \* bob reacted \+1 to alice: \"third time\"$" % TIME, 20, since=mb)
    out = b.command("/react +1")
    t.check(only(out, r"^! you already reacted with that"), "the same reaction twice is refused",
            str(out))
    mb = b.mark()
    ma = a.send("/react 1 " + UP)
    b.wait_for(r"^%s \* alice reacted %s to alice: \"third time\"$" % (TIME, UP), 20, since=mb)
    # A's own line too, so that it can't land among A's /history lines.
    a.wait_for(r"^%s \* alice reacted %s to alice: \"third time\"$" % (TIME, UP), 20, since=ma)

    t.step("history shows the room as it reads now")
    want = [
        r"^%s <alice> first words \(fixed\) \(edited\)$" % TIME,
        r"^%s <alice> second thoughts, revised \(edited\)$" % TIME,
        r"^  %s %s bob$" % (ARROW, UP),
        r"^%s <alice> third time \(edited\)$" % TIME,
        r"^  %s \+1 bob$" % ARROW,
        r"^  %s %s alice$" % (ARROW, UP),
    ]
    for n in (a, b):
        h = history(n)
        ok = len(h) == len(want) and all(re.search(w, l) for w, l in zip(want, h))
        t.check(ok, "%s: /history with (edited) and reactions" % n.name, "\n".join(h))

    t.step("ids, delete and unreact")
    h = history(b, ids=True)
    m = [re.match(r"^([0-9a-f]{6}) %s <alice> (.*)$" % TIME, l) for l in h]
    ids = {x.group(2): x.group(1) for x in m if x}
    t.check(len(ids) == 3, "/history ids prefixes each message with a 6-digit id", "\n".join(h))
    first = ids.get("first words (fixed) (edited)", "ffffff")
    out = b.command("/delete " + first)
    t.check(only(out, r"^! you can only edit or delete your own messages"),
            "B can't delete A's message", str(out))
    mb = b.mark()
    ma = a.send("/delete " + first)
    b.wait_for(r"^%s \* alice deleted a message$" % TIME, 20, since=mb)
    a.wait_for(r"^%s \* alice deleted a message$" % TIME, 20, since=ma)
    t.check(True, "A deletes its message by id; B sees it live")
    ma = a.mark()
    mb = b.send("/unreact")
    a.wait_for(r"^%s \* bob took back \+1 to alice: \"third time\"$" % TIME, 20, since=ma)
    b.wait_for(r"^%s \* bob took back \+1 to alice: \"third time\"$" % TIME, 20, since=mb)
    t.check(True, "B's /unreact takes back its latest reaction")
    want = [
        r"^%s <alice> \[message deleted\]$" % TIME,
        r"^%s <alice> second thoughts, revised \(edited\)$" % TIME,
        r"^  %s %s bob$" % (ARROW, UP),
        r"^%s <alice> third time \(edited\)$" % TIME,
        r"^  %s %s alice$" % (ARROW, UP),
    ]
    for n in (a, b):
        h = history(n)
        ok = len(h) == len(want) and all(re.search(w, l) for w, l in zip(want, h))
        t.check(ok, "%s: /history after delete and unreact" % n.name, "\n".join(h))

    t.step("after a restart")
    t.check(a.quit() == 0, "A: /quit exits 0")
    a.restart()
    a.wait_banner()
    h = history(a)
    ok = len(h) == len(want) and all(re.search(w, l) for w, l in zip(want, h))
    t.check(ok, "A: /history reads the same after a restart", "\n".join(h))
    t.check(b.quit() == 0 and a.quit() == 0, "both exit 0")


if __name__ == "__main__":
    kithnet.Test("test_edits", deadline_s=240).run(body)
