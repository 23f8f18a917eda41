"""test_pty: the line client at a terminal, driven through a pseudo-terminal.

Alice runs kith through pipes (tests/net/kithnet.py); bob runs kith on a pty
whose output goes through a small terminal emulator (Screen below: enough of
ECMA-48 for what libedit sends to an xterm), so the checks are about what a
person would see, not about bytes:

  * a message that arrives while bob is typing lands on a line of its own
    above bob's input, and the half-typed line is still there, cursor at its
    end; finishing it sends the whole line;
  * Tab completes a command (/jo -> /join ) and a member's nick (ali ->
    alice: ); Up recalls the previous line;
  * /search finds messages, /rooms counts unread messages of another room;
  * colour on a terminal; none with NO_COLOR set, none through a pipe;
  * HOME/history (mode 0600) keeps commands but not messages or codes;
  * attached to a running node (a second kith on the same home) the
    terminal works the same; /quit, Ctrl-D and Ctrl-C give the terminal
    back as it was (canonical mode and echo on again).

usage: python3 test_pty.py PATH/TO/kith
"""

import codecs
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from kithnet import run_once  # noqa: E402

ROWS, COLS = 30, 100
SGR_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
TIME = r"\[\d\d:\d\d\]"


class Screen:
    """A character grid fed with a terminal's output: printable text, CR,
    LF, BS, TAB and the CSI sequences libedit uses (cursor moves, erase,
    insert and delete characters, insert mode). Colours are ignored."""

    def __init__(self, rows=ROWS, cols=COLS):
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.r = self.c = 0
        self.wrap = False  # the last column was written: the next char wraps
        self.insert = False
        self.dec = codecs.getincrementaldecoder("utf-8")("replace")
        self.pending = ""  # an unfinished escape sequence

    def _scroll(self):
        self.grid.pop(0)
        self.grid.append([" "] * self.cols)

    def _lf(self):
        if self.r == self.rows - 1:
            self._scroll()
        else:
            self.r += 1

    def _put(self, ch):
        if self.wrap:
            self.c = 0
            self._lf()
            self.wrap = False
        row = self.grid[self.r]
        if self.insert:
            row.insert(self.c, ch)
            row.pop()
        else:
            row[self.c] = ch
        if self.c == self.cols - 1:
            self.wrap = True
        else:
            self.c += 1

    def _csi(self, params, final):
        private = params.startswith("?")
        nums = [int(p) if p.isdigit() else 0 for p in params.lstrip("?").split(";")] or [0]
        n = nums[0] or 1
        row = self.grid[self.r]
        self.wrap = False
        if private:
            return
        if final == "A":
            self.r = max(0, self.r - n)
        elif final == "B":
            self.r = min(self.rows - 1, self.r + n)
        elif final == "C":
            self.c = min(self.cols - 1, self.c + n)
        elif final == "D":
            self.c = max(0, self.c - n)
        elif final == "G":
            self.c = min(self.cols - 1, n - 1)
        elif final in "Hf":
            self.r = min(self.rows - 1, (nums[0] or 1) - 1)
            self.c = min(self.cols - 1, ((nums[1] if len(nums) > 1 else 0) or 1) - 1)
        elif final == "K":
            if nums[0] == 0:
                row[self.c:] = [" "] * (self.cols - self.c)
            elif nums[0] == 1:
                row[:self.c + 1] = [" "] * (self.c + 1)
            else:
                row[:] = [" "] * self.cols
        elif final == "J":
            if nums[0] == 0:
                row[self.c:] = [" "] * (self.cols - self.c)
                for k in range(self.r + 1, self.rows):
                    self.grid[k] = [" "] * self.cols
            elif nums[0] == 2:
                self.grid = [[" "] * self.cols for _ in range(self.rows)]
        elif final == "P":
            del row[self.c:self.c + n]
            row.extend([" "] * (self.cols - len(row)))
        elif final == "@":
            for _ in range(n):
                row.insert(self.c, " ")
            del row[self.cols:]
        elif final == "X":
            for k in range(self.c, min(self.cols, self.c + n)):
                row[k] = " "
        elif final in "hl" and nums[0] == 4:
            self.insert = final == "h"

    def feed(self, data):
        s = self.pending + self.dec.decode(data)
        self.pending = ""
        i = 0
        while i < len(s):
            ch = s[i]
            if ch == "\x1b":
                if i + 1 >= len(s):
                    self.pending = s[i:]
                    return
                if s[i + 1] == "[":
                    m = re.compile(r"\x1b\[([0-9;?]*)([@-~])").match(s, i)
                    if not m:
                        if len(s) - i < 32:
                            self.pending = s[i:]
                            return
                        i += 2
                        continue
                    self._csi(m.group(1), m.group(2))
                    i = m.end()
                    continue
                i += 3 if s[i + 1] in "()" else 2  # charset or ESC = / ESC >
                continue
            if ch == "\r":
                self.c = 0
                self.wrap = False
            elif ch == "\n":
                self._lf()
                self.wrap = False
            elif ch == "\b":
                self.c = max(0, self.c - 1)
                self.wrap = False
            elif ch == "\t":
                self.c = min(self.cols - 1, (self.c // 8 + 1) * 8)
            elif ch >= " " and ch != "\x7f":
                self._put(ch)
            i += 1

    def lines(self):
        return ["".join(r).rstrip() for r in self.grid]

    def cursor_line(self):
        return "".join(self.grid[self.r]).rstrip()

    def dump(self):
        return "\n".join("%2d|%s" % (k, l) for k, l in enumerate(self.lines()) if l) + \
            "\n(cursor row %d col %d)" % (self.r, self.c)


class PtyKith:
    """One kith process on a pseudo-terminal."""

    def __init__(self, t, binary, args, env=None):
        self.t = t
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        e = dict(os.environ)
        e.pop("NO_COLOR", None)
        e.pop("KITH_PASSPHRASE", None)
        # EDITRC: a person's ~/.editrc (vi keys, say) must not change the test.
        e.update({"TERM": "xterm", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                  "EDITRC": os.path.join(tempfile.gettempdir(), "kith-test-no-editrc")})
        e.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        e.update(env or {})
        self.raw = b""
        self.screen = Screen()
        self.cv = threading.Condition()
        self.eof = False
        kithnet.log("pty: start %s" % " ".join(args))
        self.proc = subprocess.Popen(
            [binary] + args, stdin=self.slave, stdout=self.slave, stderr=subprocess.PIPE,
            env=e, close_fds=True, cwd=tempfile.gettempdir(), preexec_fn=self._own_terminal)
        self.err = []
        self.closing = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        threading.Thread(target=self._read_err, daemon=True).start()

    @staticmethod
    def _own_terminal():
        """In the child: a session of its own with the pty as its controlling
        terminal, so Ctrl-C reaches it as a person's would."""
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def _read(self):
        while not self.closing:
            try:
                r, _, _ = select.select([self.master], [], [], 0.2)
                if not r:
                    if self.proc.poll() is not None:
                        break
                    continue
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            with self.cv:
                self.raw += data
                self.screen.feed(data)
                self.cv.notify_all()
        with self.cv:
            self.eof = True
            self.cv.notify_all()

    def _read_err(self):
        for line in self.proc.stderr:
            self.err.append(line.decode(errors="replace").rstrip("\n"))

    def type(self, text):
        os.write(self.master, text.encode() if isinstance(text, str) else text)

    def wait(self, pred, what, timeout=20.0):
        """Wait until pred(screen) is true; fail with the screen shown."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                try:
                    got = pred(self.screen)
                except IndexError:
                    got = None
                if got:
                    return got
                left = deadline - time.monotonic()
                if left <= 0 or (self.eof and not got):
                    self.t.require(False, what, "screen:\n" + self.screen.dump() +
                                   "\nstderr:\n" + "\n".join(self.err[-10:]))
                self.cv.wait(min(left, 0.2))

    def wait_line(self, regex, what, timeout=20.0):
        rx = re.compile(regex)
        return self.wait(lambda s: next((m for m in map(rx.search, s.lines()) if m), None),
                         what, timeout)

    def wait_cursor_line(self, text, what, timeout=10.0):
        """The cursor's row reads text, and the cursor is right after it."""
        return self.wait(lambda s: s.cursor_line() == text.rstrip() and s.c == len(text),
                         what, timeout)

    def tty_modes(self):
        """The terminal's local modes as the process left them."""
        return termios.tcgetattr(self.slave)[3]

    def finish(self, timeout=20.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        # The reader stops before its descriptor is closed: a number reused
        # by the next process's pipe must not be read here.
        self.closing = True
        self.reader.join(5)
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1  # closing twice must not hit a reused number


def cooked(t, k, who):
    """After k exited: the terminal as it was, and no sanitizer report."""
    modes = k.tty_modes()
    t.check(modes & termios.ICANON and modes & termios.ECHO,
            "%s: the terminal is back in canonical mode with echo" % who, "lflag %#x" % modes)
    time.sleep(0.1)  # the stderr reader takes the last lines
    bad = [l for l in k.err if kithnet.SANITIZER_RE.search(l)]
    t.check(not bad, "%s: no sanitizer reports on stderr" % who, "\n".join(k.err[-30:]))


def stopped_and_continued(t, k, who):
    """SIGSTOP, wait until stopped, cooked modes on the terminal as a shell
    would set them for itself, SIGCONT; then the process must take the
    terminal again (canonical mode off)."""
    os.kill(k.proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open("/proc/%d/stat" % k.proc.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                break
        time.sleep(0.02)
    attrs = termios.tcgetattr(k.slave)
    attrs[3] |= termios.ICANON | termios.ECHO
    termios.tcsetattr(k.slave, termios.TCSANOW, attrs)
    os.kill(k.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and k.tty_modes() & termios.ICANON:
        time.sleep(0.02)
    t.check(not k.tty_modes() & termios.ICANON,
            "%s: after SIGCONT the terminal is in libedit's mode again" % who)


def body(t):
    a = t.node("A", nick="alice").start()
    bhome = tempfile.mkdtemp(prefix="kith-ptyB-")
    os.chmod(bhome, 0o700)
    bport = kithnet.free_port()
    b = PtyKith(t, t.binary, ["--home", bhome, "--listen", "127.0.0.1:%d" % bport,
                              "--nick", "bob", "--no-lan"])
    c = None
    try:
        t.step("start-up on a terminal: prompt and colour")
        b.wait_line(r"^\* no rooms yet", "B: start-up lines on the screen", 30)
        b.wait_cursor_line("> ", "B: the prompt is on the last line")
        t.check(SGR_COLOUR.search(b.raw.decode(errors="replace")),
                "B: output to a terminal has colour")
        a.wait_banner()
        m = a.send("/create lab")
        a.wait_for(r"^\* created room lab", 20, since=m)
        code = a.invite()
        b.type("/join %s\r" % code)
        b.wait_line(r"^\* joined room lab \(2 members\)", "B joined lab", 40)
        a.wait_for(r"^\* bob joined lab", 30)
        b.wait_cursor_line("lab> ", "B: the prompt shows the current room")
        t.check(not any("\x1b" in l for l in a.lines()),
                "A (stdout a pipe): no escape codes at all")

        t.step("a message arrives while bob is typing")
        b.type("half typed")
        b.wait_cursor_line("lab> half typed", "B: the partial input is shown")
        m = a.send("hello from alice")
        a.wait_for(r"<alice> hello from alice$", 20, since=m)
        b.wait_line(r"^%s <alice> hello from alice$" % TIME,
                    "B: alice's message is on a line of its own")
        b.wait_cursor_line("lab> half typed", "B: the half-typed line is redrawn intact below it")
        lines = b.screen.lines()
        at = next(k for k, l in enumerate(lines) if l.endswith("<alice> hello from alice"))
        t.check(b.screen.r == at + 1 and b.screen.c == len("lab> half typed"),
                "B: the input line is right under the message, cursor at its end",
                b.screen.dump())
        t.check(not any("half typed" in l for l in lines[:at]),
                "B: no stale copy of the input above the message", b.screen.dump())
        b.type(" more\r")
        a.wait_for(r"<bob> half typed more$", 20)
        t.check(True, "A got bob's whole line (typed before and after the message)")
        b.wait_line(r"^%s <bob> half typed more$" % TIME, "B: its own message shown")
        b.wait_cursor_line("lab> ", "B: an empty prompt after sending")
        t.check(not any(l == "lab> half typed more" for l in b.screen.lines()),
                "B: the sent line was replaced by its message line", b.screen.dump())

        t.step("a long input that wraps over two rows")
        long_text = " ".join("word%02d" % k for k in range(20))  # 139 columns
        b.type(long_text)
        b.wait(lambda s: s.c == (len("lab> ") + len(long_text)) % COLS,
               "B: the long input is shown")
        m = a.send("second from alice")
        b.wait_line(r"^%s <alice> second from alice$" % TIME, "B: message while the input wraps")
        full = "lab> " + long_text
        b.wait(lambda s: s.lines()[s.r - 1] == full[:COLS] and s.cursor_line() == full[COLS:]
               and s.c == len(full) - COLS, "B: both rows of the input redrawn under it")
        lines = b.screen.lines()
        at = next(k for k, l in enumerate(lines) if l.endswith("<alice> second from alice"))
        t.check(at == b.screen.r - 2 and not any("word00" in l for l in lines[:at]),
                "B: the message sits right above the input, no stale input rows",
                b.screen.dump())
        b.type("\r")
        a.wait_for(r"<bob> %s$" % long_text, 20)
        t.check(True, "A got the long line whole")
        b.wait_cursor_line("lab> ", "B: empty prompt after the long line")
        t.check(not any("word00" in l and "<bob>" not in l for l in b.screen.lines()),
                "B: the sent long line was taken off the screen (both rows)", b.screen.dump())

        t.step("Tab completion and history")
        b.type("/jo\t")
        b.wait_cursor_line("lab> /join ", "B: /jo<Tab> completes to /join")
        b.type("\x15")  # Ctrl-U: kill the line
        b.wait_cursor_line("lab> ", "B: Ctrl-U clears the line")
        b.type("ali\t")
        b.wait_cursor_line("lab> alice: ", "B: ali<Tab> completes alice's nick with ': '")
        b.type("tab works\r")
        a.wait_for(r"<bob> alice: tab works$", 20)
        t.check(True, "A got the line with the completed nick")
        b.wait_cursor_line("lab> ", "B: empty prompt again")
        b.type("\x1b[A")
        b.wait_cursor_line("lab> alice: tab works", "B: Up recalls the previous line")
        b.type("\x1b[A")
        b.wait(lambda s: s.cursor_line() == ("lab> " + long_text)[COLS:],
               "B: Up again: the line before (the long one)")
        b.type("\x1b[A")
        b.wait_cursor_line("lab> half typed more", "B: Up again: the one before that")
        b.type("\x1b[B")
        b.wait(lambda s: s.cursor_line() == ("lab> " + long_text)[COLS:], "B: Down: the long one")
        b.type("\x1b[B\r")
        a.wait_count(r"<bob> alice: tab works$", 2, 20)
        t.check(True, "B: Down then Enter sent the recalled line again")

        t.step("/search and /rooms unread")
        b.type("/search HALF\r")
        b.wait_line(r"^\* 1 message in lab contains \"HALF\"$", "B: /search counts one match")
        lines = b.screen.lines()
        at = max(k for k, l in enumerate(lines) if l.startswith("* 1 message in lab"))
        t.check(re.match(r"^%s <bob> half typed more$" % TIME, lines[at - 1])
                and lines[at - 2] == "lab> /search HALF",
                "B: /search shows the matching line with time and nick", b.screen.dump())
        b.type("/search nothing-like-this\r")
        b.wait_line(r"^\* no messages in lab contain \"nothing-like-this\"$",
                    "B: /search without a match says so")
        b.type("/edit searchable edit\r")
        b.wait_line(r"^%s \* bob edited: searchable edit$" % TIME, "B: edited its last message")
        b.type("/search SEARCHABLE\r")
        b.wait_line(r"^\* 1 message in lab contains \"SEARCHABLE\"$",
                    "B: /search finds the edited text")
        t.check(any(re.match(r"^%s <bob> searchable edit \(edited\)$" % TIME, l)
                    for l in b.screen.lines()), "B: the match shows as edited", b.screen.dump())
        b.type("/delete\r")
        b.wait_line(r"^%s \* bob deleted a message$" % TIME, "B: deleted it")
        b.type("/search searchable\r")
        b.wait_line(r"^\* no messages in lab contain \"searchable\"$",
                    "B: /search skips a deleted message")
        b.type("/create other\r")
        b.wait_line(r"^\* created room other$", "B: created a second room")
        b.wait_cursor_line("other> ", "B: the prompt follows the current room")
        for i in range(3):
            a.send("unread %d" % i)
        b.wait_line(r"^%s #lab <alice> unread 2$" % TIME, "B: lab's messages show with #lab")
        b.type("/rooms\r")
        b.wait_line(r"^\* lab  2 members, \d+ online, \d+ messages, 3 unread$",
                    "B: /rooms counts 3 unread in lab")
        b.type("/switch lab\r")
        b.wait_line(r"^\* now in lab$", "B: switched to lab")
        b.type("/rooms\r")
        b.wait_line(r"^\* lab  2 members, \d+ online, \d+ messages  \(current\)$",
                    "B: after /switch, lab has nothing unread")

        t.step("/quit gives the terminal back; the history file")
        b.type("/quit\r")
        rc = b.finish()
        t.check(rc == 0, "B: /quit exits 0", "rc %s" % rc)
        cooked(t, b, "B")
        hist = os.path.join(bhome, "history")
        t.require(os.path.exists(hist), "B: HOME/history written")
        t.check(os.stat(hist).st_mode & 0o777 == 0o600, "B: history has mode 0600",
                oct(os.stat(hist).st_mode))
        text = open(hist, encoding="utf-8", errors="replace").read()
        t.check("/search" in text and "/rooms" in text, "B: history keeps commands", text)
        t.check("half" not in text and "tab works" not in text and "kith1:" not in text
                and "searchable edit" not in text,
                "B: history keeps no messages and no invite code", text)
        b.close()

        t.step("NO_COLOR, and a pipe: no colour")
        c = PtyKith(t, t.binary, ["--home", bhome, "--listen", "127.0.0.1:%d" % bport,
                                  "--nick", "bob", "--no-lan"], env={"NO_COLOR": "1"})
        # Which room comes first after a restart is the store's order.
        first = c.wait(lambda s: s.c == len(s.cursor_line()) + 1
                       and re.fullmatch(r"(lab|other)> ", s.cursor_line() + " "),
                       "C (NO_COLOR): prompt shown", 30).group(1)
        c.type("\x1b[A")
        c.wait_cursor_line("%s> /quit" % first,
                           "C: Up recalls the last command of the last session")
        c.type("\x15/switch lab\r")
        c.wait_cursor_line("lab> ", "C: in lab")
        c.type("/history 3\r")
        c.wait_line(r"^%s (#lab )?<alice> unread 2$" % TIME, "C: /history output")
        c.type("typing")
        c.wait_cursor_line("lab> typing", "C: typed text shown")
        # Ctrl-Z and fg, as a shell does it: stopped, the terminal put back
        # in the shell's (cooked) modes, continued.
        stopped_and_continued(t, c, "C")
        c.type(" ali\t")
        c.wait_cursor_line("lab> typing alice ",
                           "C: after fg the input is intact and keys are libedit's again")
        c.type("\x15typing")
        c.wait_cursor_line("lab> typing", "C: Ctrl-U and typing again")
        c.type("\x03")  # Ctrl-C: SIGINT, a clean shut-down
        rc = c.finish()
        t.check(rc == 0, "C: Ctrl-C exits 0", "rc %s" % rc)
        raw = c.raw.decode(errors="replace")
        t.check(not SGR_COLOUR.search(raw), "C: NO_COLOR=1 on a terminal: no colour codes",
                repr(SGR_COLOUR.findall(raw)[:5]))
        cooked(t, c, "C")
        c.close()
        c = None
        rc, out, err = run_once(t.binary, ["--home", bhome, "--listen",
                                           "127.0.0.1:%d" % bport, "--no-lan"],
                                stdin=b"/rooms\n/switch lab\n/history 2\n/quit\n")
        t.check(rc == 0 and "unread 2" in out and "\x1b" not in out,
                "a pipe without NO_COLOR: plain lines, no escape codes",
                "rc %s out %r" % (rc, out[-300:]))

        t.step("attached to a running node")
        c = PtyKith(t, t.binary, ["--home", a.home])
        c.wait_cursor_line("> ", "attach: the prompt is shown", 20)
        c.type("hello from the attached")
        c.wait_cursor_line("> hello from the attached", "attach: typed text shown")
        c.type("\x01\x0bsaid by attach\r")  # Ctrl-A, Ctrl-K: edit before sending
        a.wait_for(r"<alice> said by attach$", 20)
        c.wait_line(r"^%s <alice> said by attach$" % TIME, "attach: the line came back")
        c.type("/jo\t")
        c.wait_cursor_line("> /join ", "attach: Tab completes a command")
        c.type("\x15al\t")
        c.wait_cursor_line("> alice: ", "attach: Tab completes a nick seen in a message")
        c.type("\x15half")
        c.wait_cursor_line("> half", "attach: typed text shown")
        stopped_and_continued(t, c, "attach")
        c.type("!")
        c.wait_cursor_line("> half!", "attach: after fg the input is intact, keys work")
        c.type("\x15")
        c.wait_cursor_line("> ", "attach: Ctrl-U cleared the line")
        c.type("\x04")  # Ctrl-D on an empty line is /quit
        rc = c.finish()
        t.check(rc == 0, "attach: Ctrl-D detaches with exit 0", "rc %s" % rc)
        cooked(t, c, "attach")
        t.check(a.running(), "A's node still runs after the attached client left")
        t.check(a.quit() == 0, "A: /quit exits 0")
    finally:
        b.close()
        if c:
            c.close()
        shutil.rmtree(bhome, ignore_errors=True)


if __name__ == "__main__":
    kithnet.Test("test_pty", deadline_s=180).run(body)
