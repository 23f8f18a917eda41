"""test_cli: the command line and the line client, end to end.

Checks the promises of the contract (docs/guide.md) on real processes:
options and exit codes, the passphrase-sealed identity, one node per home
(a second `kith` attaches to it),
each command's reply, the message formats (actions, // escapes, the #room
prefix with two rooms), input limits (line length, UTF-8), that text from a
peer can't drive the terminal, nick changes seen by others, single-use
invites, and that EOF, SIGINT and SIGTERM all end in a clean exit 0.

usage: python3 test_cli.py PATH/TO/kith
"""

import os
import re
import signal
import socket
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from kithnet import run_once  # noqa: E402

TIME = r"\[\d\d:\d\d\]"


def only(lines, pattern):
    return [l for l in lines if re.search(pattern, l)]


def command_line(t):
    t.step("options and exit codes")
    k = t.binary
    home = tempfile.mkdtemp(prefix="kith-cli-")
    try:
        rc, out, err = run_once(k, ["--version"])
        t.check(rc == 0 and re.search(r"^kith \d+\.\d+\.\d+", out, re.M),
                "--version prints the version, exit 0", "rc %s out %r" % (rc, out))
        rc, out, err = run_once(k, ["--help"])
        t.check(rc == 0 and "--listen" in out + err, "--help lists the options, exit 0",
                "rc %s" % rc)
        rc, out, err = run_once(k, ["--frob"])
        t.check(rc == 2, "unknown option: exit 2", "rc %s err %r" % (rc, err))
        rc, out, err = run_once(k, ["--home", home, "--listen", "127.0.0.1:0"])
        t.check(rc == 2 and "port 0" in err, "--listen with port 0 is refused (exit 2)",
                "rc %s err %r" % (rc, err))
        rc, out, err = run_once(k, ["--home", home, "--listen", "nonsense"])
        t.check(rc == 2, "--listen with a bad address: exit 2", "rc %s err %r" % (rc, err))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            rc, out, err = run_once(k, ["--home", home, "--listen", "127.0.0.1:%d" % port])
            t.check(rc == 1 and "cannot listen" in err,
                    "a port already taken: '! cannot listen ...' on stderr, exit 1",
                    "rc %s err %r" % (rc, err))
        rc, out, err = run_once(k, ["--home", home, "--listen",
                                    "127.0.0.1:%d" % kithnet.free_port()], stdin=b"")
        t.check(rc == 0, "EOF on stdin at once: clean exit 0", "rc %s err %r" % (rc, err))
        os.chmod(home, 0o755)
        rc, out, err = run_once(k, ["--home", home, "--listen",
                                    "127.0.0.1:%d" % kithnet.free_port()], stdin=b"/quit\n")
        t.check(rc == 1, "a home other users can read is refused (exit 1)",
                "rc %s err %r" % (rc, err))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def identity(t):
    t.step("identity sealed with KITH_PASSPHRASE")
    p = t.node("P", nick="pat", env={"KITH_PASSPHRASE": "correct horse"}).start()
    fp = p.wait_for(r"^\* kith \S+ — you are pat \(fingerprint (\S+)\)", 30).group(1)
    created = p.lines(r"created a new identity")
    t.check(created and "sealed" in created[0], "P: says the new key is sealed", str(created))
    t.check(p.quit() == 0, "P: /quit exits 0")
    rc, out, err = run_once(t.binary, ["--home", p.home, "--listen", p.addr], stdin=b"/quit\n")
    t.check(rc == 1 and "passphrase-protected" in err,
            "sealed key without KITH_PASSPHRASE: exit 1 with a clear message",
            "rc %s err %r" % (rc, err))
    rc, out, err = run_once(t.binary, ["--home", p.home, "--listen", p.addr],
                            env={"KITH_PASSPHRASE": "wrong"}, stdin=b"/quit\n")
    t.check(rc == 1, "sealed key with a wrong passphrase: exit 1", "rc %s err %r" % (rc, err))
    p.restart()
    fp2 = p.wait_for(r"^\* kith \S+ — you are pat \(fingerprint (\S+)\)", 30,
                     since=p.gen_start()).group(1)
    t.check(fp2 == fp, "right passphrase: same identity (fingerprint %s)" % fp, fp2)
    rc, out, err = run_once(t.binary, ["node", "--home", p.home, "--listen",
                                       "127.0.0.1:%d" % kithnet.free_port()],
                            env={"KITH_PASSPHRASE": "correct horse"})
    t.check(rc == 1 and "another kith" in err, "a second node on a home in use: exit 1",
            "rc %s err %r" % (rc, err))
    # kith on a home whose node runs attaches to it; /quit only detaches.
    rc, out, err = run_once(t.binary, ["--home", p.home], stdin=b"/quit\n")
    t.check(rc == 0 and re.search(r"^\* attached to .*pat", out, re.M)
            and re.search(r"^\* detached", out, re.M),
            "kith on a home in use attaches, /quit detaches (exit 0)",
            "rc %s out %r err %r" % (rc, out, err))
    t.check(p.running(), "P: still running after the attached session left")
    t.check(p.kill(signal.SIGINT) == 0, "P: SIGINT: clean exit 0")


def client(t):
    a = t.node("A", nick="alice").start()
    b = t.node("B", nick="bob").start()
    a.wait_banner()
    b.wait_banner()

    t.step("before any room")
    out = a.command("hello?")
    t.check(only(out, r"^! not in a room"), "A: plain line without a room is an error", str(out))
    out = a.command("/frob x")
    t.check(only(out, r"^! unknown command /frob: try /help$"), "A: unknown command", str(out))
    out = a.command("/help")
    t.check(len(only(out, r"^\* +/")) >= 10, "A: /help lists the commands", str(out))
    out = a.command("/join")
    t.check(only(out, r"^! "), "A: /join without a code is an error", str(out))

    t.step("room, invite, join")
    kithnet.form_room(t, a, [b])
    code = a.lines(r"kith1:")[-1].split()[-1]
    c = t.node("C", nick="carol").start()
    c.wait_banner()
    m = c.send("/join " + code)
    jm = c.wait_for(r"^(\* joined room .*|! join failed.*)$", 30, since=m)
    t.check(jm.group(0).startswith("! join failed"), "C: an invite is used up after one join",
            jm.group(0))
    out = c.command("/join kith1:AAAAAAAA")
    t.check(only(out, r"^! "), "C: a garbage invite code is refused", str(out))
    t.check(c.quit() == 0, "C: /quit exits 0")

    who = {w[0]: w for w in a.who()}
    t.check(who.get("alice", ("",) * 4)[1:2] == ("admin",) and who["alice"][3] == "you",
            "A: /who shows alice as admin (you)", str(who))
    t.check(who.get("bob", ("",) * 4)[1] == "member", "A: /who shows bob as member", str(who))

    t.step("message formats")
    mb = b.mark()
    a.send("//slash at the start")
    b.wait_for(r"^%s <alice> /slash at the start$" % TIME, 20, since=mb)
    t.check(True, "B: '//x' arrives as '/x'")
    ma = a.send("/me waves")
    b.wait_for(r"^%s \* alice waves$" % TIME, 20, since=mb)
    t.check(True, "B: /me arrives as an action line")
    # A prints its own action once it is durable; wait for that line so it
    # can't land after the mark below.
    a.wait_for(r"^%s \* alice waves$" % TIME, 20, since=ma)
    ma = a.send("")
    a.sync()
    extra = [l for l in a.lines(None, ma) if not l.startswith("! unknown command /sync-")]
    t.check(not extra, "A: an empty line is ignored", str(extra))

    t.step("input limits")
    out = a.command("x" * 16385)
    t.check(only(out, r"^! line too long \(max 16384 bytes\)$"),
            "A: a 16385-byte line is refused", str([l[:80] for l in out]))
    mb = b.mark()
    big = "L" + "y" * 16383
    a.send(big)
    got = b.wait_for(r"^%s <alice> (Ly+)$" % TIME, 30, since=mb)
    t.check(got.group(1) == big, "B: a 16384-byte line arrives whole")
    ma = a.send_raw(b"bad \xff\xfe utf8\n")
    a.sync()
    t.check(only(a.lines(None, ma), r"^! message is not valid UTF-8$"),
            "A: invalid UTF-8 is refused", str(a.lines(None, ma)))

    t.step("text from a peer cannot drive the terminal")
    mb = b.mark()
    a.send("evil \x1b[2J\x1b]0;title\x07 \u202e reversed \x7f end")
    got = b.wait_for(r"^%s <alice> evil .* end$" % TIME, 20, since=mb).group(0)
    t.check(not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", got),
            "B: control characters and bidi overrides are not printed raw", repr(got))

    t.step("nick change")
    out = a.command("/nick alicia")
    t.check(only(out, r"^\* you are now alicia$"), "A: /nick replies", str(out))
    b.wait_for(r"^\* alice is now known as alicia$", 20, since=mb)
    t.check(True, "B: sees alice is now known as alicia")
    a.send("as alicia")
    b.wait_for(r"^%s <alicia> as alicia$" % TIME, 20, since=mb)
    t.check(True, "B: later messages carry the new nick")

    t.step("two rooms")
    out = a.command("/create second")
    t.check(only(out, r"^\* created room second$"), "A: /create second", str(out))
    ma = a.send("in the second room")
    a.wait_for(r"^%s #second <alicia> in the second room$" % TIME, 20, since=ma)
    t.check(True, "A: with two rooms, message lines carry #room")
    out = a.command("/rooms")
    rooms = only(out, r"^\* (bookclub|second) ")
    t.check(len(rooms) == 2 and only(rooms, r"^\* second .*current"),
            "A: /rooms lists both, second is current", str(out))
    out = a.command("/switch bookclub")
    t.check(only(out, r"^\* now in bookclub$"), "A: /switch bookclub", str(out))
    out = a.command("/switch nope")
    t.check(only(out, r"^! "), "A: /switch to an unknown room is an error", str(out))
    out = a.command("/invite nope")
    t.check(only(out, r"^! "), "A: /invite for an unknown room is an error", str(out))
    mb = b.mark()
    ma = a.send("back in bookclub")
    # A prints its own line once durable: wait for it, so that it can't land
    # among the /history output below.
    a.wait_for(r"^%s #bookclub <alicia> back in bookclub$" % TIME, 20, since=ma)
    b.wait_for(r"^%s <alicia> back in bookclub$" % TIME, 20, since=mb)
    t.check(True, "B (one room): no #room prefix")
    hist = only(a.command("/history 3"), r"^%s " % TIME)
    t.check(len(hist) == 3 and hist[-1].endswith("<alicia> back in bookclub")
            and "#bookclub" in hist[-1], "A: /history 3 shows the last 3 of bookclub",
            str(hist))

    t.step("ways to stop")
    b.close_stdin()
    t.check(b.wait_exit(30) == 0, "B: EOF on stdin: exit 0")
    t.check(a.kill(signal.SIGTERM) == 0, "A: SIGTERM: exit 0")


def body(t):
    command_line(t)
    identity(t)
    client(t)


if __name__ == "__main__":
    kithnet.Test("test_cli", deadline_s=300).run(body)
