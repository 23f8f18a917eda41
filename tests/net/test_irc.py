"""test_irc: the IRC gateway, driven by a scripted raw IRC client.

  1. A runs `kith node --irc PORT`; the banner gives the password. A wrong
     password gets 464 and the connection is closed.
  2. An irssi-like session: CAP LS 302 and `JOIN :` before registration (451
     answers the JOIN), PASS/NICK/USER, CAP REQ server-time message-tags,
     CAP END, then 001-005. JOIN #lab creates the room; MODE, WHO and MODE b
     are answered (324, 352/315, 368) so a client counts the channel synced.
  3. *kith service: `invite #lab` gives a code; B (a kith line client on
     another node) joins with it.
  4. PRIVMSG and CTCP ACTION from IRC reach B as `<alice> text` / `* alice
     text`; B's messages reach IRC as PRIVMSG from bob, with @time tags.
  5. A second IRC session without CAPs gets the history replayed on JOIN,
     times in the text; one with server-time gets @time tags.
  6. Hostile input: an over-long line (417), a NUL, a bad command (421),
     commands before registration (451); the session still answers PING.

usage: python3 test_irc.py PATH/TO/kith
"""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from kithnet import log  # noqa: E402


class Irc:
    """A raw IRC connection: send lines, wait for lines matching a regex."""

    def __init__(self, port, name):
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.lines = []
        self.pos = 0
        self.closed = False

    def send(self, line):
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        log("%s -> %r" % (self.name, data[:120]))
        self.sock.sendall(data + b"\r\n")

    def _fill(self, timeout):
        self.sock.settimeout(max(0.05, timeout))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        if not data:
            self.closed = True
            return
        self.buf += data
        while b"\r\n" in self.buf:
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            if os.environ.get("KITH_NET_VERBOSE"):
                log("%s <- %s" % (self.name, text))
            self.lines.append(text)

    def expect(self, regex, timeout=20.0):
        """Next line (from the read position on) matching regex."""
        r = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            while self.pos < len(self.lines):
                line = self.lines[self.pos]
                self.pos += 1
                m = r.search(line)
                if m:
                    return m
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise kithnet.Timeout("%s: no line matching /%s/; last lines:\n  %s" % (
                    self.name, regex, "\n  ".join(self.lines[-15:])))
            self._fill(left)

    def wait_closed(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._fill(deadline - time.monotonic())
        return self.closed

    def register(self, password, nick, caps=()):
        self.send("CAP LS 302")
        self.send("JOIN :")
        self.expect(r"^:kith CAP \* LS :.*server-time")
        self.expect(r"^:kith 451 ")
        self.send("PASS " + password)
        self.send("NICK " + nick)
        self.send("USER %s 0 * :%s" % (nick, nick))
        if caps:
            self.send("CAP REQ :" + " ".join(caps))
            self.expect(r"^:kith CAP \S+ ACK :")
        self.send("CAP END")
        self.expect(r"^:kith 001 %s " % re.escape(nick))
        self.expect(r"^:kith 005 ")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def body(t):
    irc_port = kithnet.free_port()
    a = t.node("alice", extra_args=["node", "--irc", str(irc_port)])
    b = t.node("bob")
    a.start()
    b.start()
    m = a.wait_for(r"^\* IRC gateway on 127\.0\.0\.1:(\d+), password ([A-Za-z0-9_-]+) ", 30)
    password = m.group(2)
    t.check(int(m.group(1)) == irc_port and len(password) >= 16,
            "the gateway says where it listens and gives a password")
    b.wait_banner()

    t.step("a wrong password is refused")
    bad = Irc(irc_port, "bad")
    bad.send("PASS wrong-password")
    bad.send("NICK mallory")
    bad.send("USER m 0 * :m")
    bad.expect(r"^:kith 464 ")
    t.check(bad.wait_closed(), "the connection is closed after 464")
    bad.close()

    t.step("an irssi-like registration, JOIN creates the room")
    c = Irc(irc_port, "irc1")
    c.register(password, "alice", caps=("server-time", "message-tags"))
    t.check(True, "registered with CAP LS 302, JOIN :, PASS, server-time")
    c.send("JOIN #lab")
    c.expect(r"^:alice!\S+ JOIN #lab$")
    c.expect(r"^:kith 353 alice = #lab :.*alice")
    c.expect(r"^:kith 366 alice #lab ")
    c.send("MODE #lab")
    c.expect(r"^:kith 324 alice #lab \+")
    c.send("WHO #lab")
    c.expect(r"^:kith 352 alice #lab \S+ kith kith alice H")
    c.expect(r"^:kith 315 alice #lab ")
    c.send("MODE #lab b")
    c.expect(r"^:kith 368 alice #lab ")
    t.check(True, "MODE, WHO and MODE b answered (324, 352/315, 368)")
    c.send("PRIVMSG #lab :said before bob came")

    t.step("*kith invite, bob joins from a line client")
    c.send("PRIVMSG *kith :invite #lab")
    code = c.expect(r"^:\*kith!\S+ PRIVMSG alice :invite for #lab .*(kith1:\S+)").group(1)
    mk = b.send("/join " + code)
    b.wait_for(r"^\* joined room lab\b", 30, since=mk)
    c.expect(r"^:bob!\S+ JOIN #lab$")
    t.check(True, "bob's join shows on IRC as JOIN")
    kithnet.wait_online([b], 20)

    t.step("messages both ways")
    mk = b.mark()
    c.send("PRIVMSG #lab :hello bob, from irssi")
    b.wait_for(r"^\[\d\d:\d\d\] <alice> hello bob, from irssi$", 20, since=mk)
    t.check(True, "IRC PRIVMSG reaches the kith line client")
    c.send("PRIVMSG #lab :\x01ACTION waves\x01")
    b.wait_for(r"^\[\d\d:\d\d\] \* alice waves$", 20, since=mk)
    t.check(True, "CTCP ACTION arrives as /me")
    b.send("hi alice, from kith")
    m = c.expect(r"^@time=(\S+) :bob!\S+ PRIVMSG #lab :hi alice, from kith$")
    t.check(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", m.group(1)) is not None,
            "bob's message arrives on IRC with an @time tag")
    b.send("/me nods")
    c.expect(r"^@time=\S+ :bob!\S+ PRIVMSG #lab :\x01ACTION nods\x01$")
    t.check(True, "a /me arrives as CTCP ACTION")
    b.send("two\\nlines are one message")  # literal backslash-n: one line
    c.expect(r"PRIVMSG #lab :two\\nlines are one message$")
    t.check(not any("PRIVMSG #lab :hello bob, from irssi" in l for l in c.lines),
            "our own messages are not echoed back to the sender")

    t.step("history replay on JOIN")
    plain = Irc(irc_port, "irc2")
    plain.register(password, "alice2")
    # Rooms are joined at registration; the replay comes right after NAMES.
    plain.expect(r"^:alice2!\S+ JOIN #lab$")
    plain.expect(r"^:kith 366 alice2 #lab ")
    m = plain.expect(r"^:alice2!\S+ PRIVMSG #lab :\[\d{4}-\d\d-\d\d \d\d:\d\d\] said before bob came$")
    t.check(True, "replay without server-time puts the time in the text")
    plain.expect(r"^:bob!\S+ PRIVMSG #lab :\[[^]]+\] hi alice, from kith$")
    t.check(True, "bob's message is in the replay under his nick")
    tagged = Irc(irc_port, "irc3")
    tagged.register(password, "alice3", caps=("server-time",))
    tagged.expect(r"^@time=\S+ :alice3!\S+ PRIVMSG #lab :said before bob came$")
    t.check(True, "replay with server-time carries @time tags")
    tagged.send("PART #lab")
    tagged.expect(r"^:alice3!\S+ PART #lab$")
    tagged.send("JOIN #lab")
    tagged.expect(r"^@time=\S+ :alice3!\S+ PRIVMSG #lab :said before bob came$")
    t.check(True, "PART then JOIN replays again")
    tagged.close()

    t.step("hostile input")
    h = Irc(irc_port, "hostile")
    h.send("JOIN #lab")
    h.expect(r"^:kith 451 \* ")
    h.send("PRIVMSG #lab :x")
    h.expect(r"^:kith 451 ")
    t.check(True, "commands before registration get 451")
    h.register(password, "hostile")
    h.send(b"PRIVMSG #lab :" + b"A" * 9000)
    h.expect(r"^:kith 417 ")
    t.check(True, "an over-long line gets 417")
    h.send(b"PRIV\x00MSG #lab :nul")
    h.expect(r"^:kith 421 ")
    h.send(b"\xff\xfe garbage")
    h.expect(r"^:kith 421 ")
    h.send("FROBNICATE x")
    h.expect(r"^:kith 421 hostile FROBNICATE ")
    h.send(b"PRIVMSG #lab :\xff\xfe not utf-8")
    h.expect(r"^:kith 404 hostile #lab ")
    h.send("PRIVMSG #nope :x")
    h.expect(r"^:kith 403 ")
    h.send("PRIVMSG bob :private")
    h.expect(r"^:kith 401 ")
    h.send("JOIN")
    h.expect(r"^:kith 461 ")
    h.send("NICK bad,nick")
    h.expect(r"^:kith 432 ")
    h.send("PING :still-here")
    h.expect(r"^:kith PONG kith :still-here$")
    t.check(True, "numeric errors for NUL, bad bytes, unknown commands, bad UTF-8, "
                  "unknown channel, private message, missing params, bad nick; PING still works")
    h.send("QUIT :bye")
    t.check(h.wait_closed(), "QUIT closes the connection")

    t.step("the gateway after hostile input")
    mk = b.mark()
    c.send("PRIVMSG #lab :still works")
    b.wait_for(r"<alice> still works$", 20, since=mk)
    c.send("PING x")
    c.expect(r"PONG kith :x$")
    t.check(True, "the first session is unaffected")
    c.close()
    plain.close()
    t.check(b.quit() == 0, "bob quits with 0")
    a.kill(kithnet.signal.SIGTERM)
    t.check(a.proc.returncode == 0, "A stops on SIGTERM with 0")


if __name__ == "__main__":
    kithnet.Test("test_irc", deadline_s=240).run(body)
