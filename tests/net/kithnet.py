"""kithnet: a small harness that runs real kith processes on loopback.

The network tests (tests/net/test_*.py) drive several `kith` binaries through
their line client, exactly as a person or a script would: commands go in on
stdin, one event per line comes out on stdout (see the line-client contract in
docs/guide.md). This module gives them:

  * Node: one kith process with its own temporary home and a free loopback
    port; send(line), wait_for(regex), lines(regex), kill(sig), quit(),
    restart() (same home, same port).
  * Test: counts checks, enforces an overall deadline, always kills every
    child, and prints the final "N passed, M failed" line.

Standard library only (python3 from Debian 12). Every wait has a deadline and
the whole script has one too, so nothing here can hang a CI run: a child that
outlives the script is killed by atexit, by the finally in Test.run, by
PR_SET_PDEATHSIG when the harness itself is killed, and at worst it sees EOF on
its stdin (EOF is /quit).

Environment:
  KITH_NET_SCALE   multiplies message counts (default 1.0); the sanitizer pass
                   of tools/test uses a smaller value.
  KITH_NET_KEEP    if set, temporary homes are kept (their paths are printed).
  KITH_NET_VERBOSE if set, every line a node prints is echoed as it arrives.
"""

import atexit
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# The contract's line formats (docs/guide.md, "Output").
MSG_RE = re.compile(r"^\[(\d\d):(\d\d)\] (?:#(\S+) )?<([^>]*)> (.*)$")
ACTION_RE = re.compile(r"^\[(\d\d):(\d\d)\] (?:#(\S+) )?\* (\S+) (.*)$")
INVITE_RE = re.compile(r"^\* invite for (\S+) .*?(kith1:\S+)")
WHO_RE = re.compile(
    r"^\* (\S+)\s+(admin|moderator|member|observer)\s+(\S+)\s+(online|offline|you)\s*$")
SANITIZER_RE = re.compile(
    r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")

_T0 = time.monotonic()
_ALL_NODES = []  # every Node ever started, for the last-resort clean-up


class Failure(Exception):
    """A required check failed: the test stops here."""


class Timeout(Failure):
    """A bounded wait ran out."""


def log(msg):
    print("[%7.2f] %s" % (time.monotonic() - _T0, msg), flush=True)


def scale(n, minimum=10):
    """n scaled by KITH_NET_SCALE, at least `minimum`."""
    try:
        f = float(os.environ.get("KITH_NET_SCALE", "1.0"))
    except ValueError:
        f = 1.0
    return max(minimum, int(round(n * f)))


def free_port():
    """A loopback TCP port that was free a moment ago (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pdeathsig():
    """In the child before exec: die with the harness, even if it is SIGKILLed."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Node:
    """One kith process driven through its line client."""

    def __init__(self, binary, name, nick=None, home=None, port=None, extra_args=(), env=None):
        self.binary = binary
        self.name = name
        self.nick = nick or name
        self.own_home = home is None
        self.home = home or tempfile.mkdtemp(prefix="kith-%s-" % name)
        self.port = port or free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.extra_args = list(extra_args)
        self.env = dict(env or {})  # extra environment, e.g. KITH_PASSPHRASE
        self.proc = None
        self.generation = 0  # how many times started
        self._cv = threading.Condition()
        self._lines = []  # (monotonic time, generation, text) of stdout lines
        self._err = []  # stderr lines, all generations
        self._eof = True
        self._wq = None
        self._threads = []
        _ALL_NODES.append(self)

    # -- life cycle --------------------------------------------------------

    def argv(self):
        return [self.binary, "--home", self.home, "--listen", self.addr,
                "--nick", self.nick] + self.extra_args

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = dict(os.environ)
        env.pop("KITH_PASSPHRASE", None)
        env["KITH_HOME"] = self.home
        env.update(self.env)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self.generation += 1
        log("%s: start #%d: %s" % (self.name, self.generation, " ".join(self.argv())))
        self.proc = subprocess.Popen(
            self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir(), bufsize=0,
            preexec_fn=_pdeathsig)
        self._eof = False
        self._wq = queue.Queue()
        gen = self.generation
        self._threads = [
            threading.Thread(target=self._read_out, args=(self.proc, gen), daemon=True),
            threading.Thread(target=self._read_err, args=(self.proc, gen), daemon=True),
            threading.Thread(target=self._write, args=(self.proc, self._wq), daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def _read_out(self, proc, gen):
        verbose = bool(os.environ.get("KITH_NET_VERBOSE"))
        for raw in iter(proc.stdout.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if verbose:
                log("%s> %s" % (self.name, text))
            with self._cv:
                self._lines.append((time.monotonic(), gen, text))
                self._cv.notify_all()
        with self._cv:
            if gen == self.generation:
                self._eof = True
            self._cv.notify_all()

    def _read_err(self, proc, gen):
        for raw in iter(proc.stderr.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cv:
                self._err.append("#%d %s" % (gen, text))

    def _write(self, proc, wq):
        # A writer thread per process: the test never blocks on a full pipe,
        # and sends to several nodes proceed at the same time.
        while True:
            data = wq.get()
            if data is None:
                break
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                break
        try:
            proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def mark(self):
        """Index of the next stdout line: pass as `since` to wait_for/lines."""
        with self._cv:
            return len(self._lines)

    def send(self, line):
        """Queue one line for stdin; returns mark() taken just before."""
        return self.send_many([line])

    def send_many(self, lines):
        m = self.mark()
        if self._wq is None:
            raise Failure("%s: send while not started" % self.name)
        self._wq.put("".join(l + "\n" for l in lines).encode("utf-8"))
        return m

    def send_raw(self, data):
        """Queue raw bytes for stdin (for invalid UTF-8 and the like)."""
        m = self.mark()
        self._wq.put(bytes(data))
        return m

    def close_stdin(self):
        if self._wq is not None:
            self._wq.put(None)

    def wait_exit(self, timeout):
        """Exit code, or raise Timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Timeout("%s: still running after %.0f s" % (self.name, timeout))

    def quit(self, timeout=30.0, command="/quit"):
        """Ask the node to exit cleanly; returns its exit code."""
        if command:
            self.send(command)
        self.close_stdin()
        rc = self.wait_exit(timeout)
        self._join_readers(5.0)
        log("%s: exited with %s" % (self.name, rc))
        return rc

    def kill(self, sig=signal.SIGKILL, timeout=15.0):
        """Send a signal and wait for the process to end; returns the exit code."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        log("%s: kill -%d" % (self.name, int(sig)))
        self.proc.send_signal(sig)
        rc = self.wait_exit(timeout)
        self.close_stdin()
        self._join_readers(5.0)
        return rc

    def restart(self):
        """Start again with the same home and port (after quit or kill)."""
        if self.running():
            raise Failure("%s: restart while running" % self.name)
        return self.start()

    def _join_readers(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def cleanup(self):
        """Stop the process by any means; remove the home. Never raises."""
        try:
            if self.running():
                self.close_stdin()
                try:
                    self.proc.wait(timeout=3.0)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
                    try:
                        self.proc.wait(timeout=3.0)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(timeout=5.0)
        except Exception as e:  # noqa: BLE001 - clean-up must go on
            log("%s: clean-up: %s" % (self.name, e))
        self._join_readers(3.0)  # so the stderr scan sees every line
        if self.own_home:
            if os.environ.get("KITH_NET_KEEP"):
                log("%s: home kept at %s" % (self.name, self.home))
            else:
                shutil.rmtree(self.home, ignore_errors=True)

    # -- output ------------------------------------------------------------

    def lines(self, regex=None, since=0, gen=None):
        """stdout lines (text) from index `since`, optionally only those
        matching `regex`, optionally only from start number `gen`."""
        with self._cv:
            snap = self._lines[since:]
        out = []
        for _, g, text in snap:
            if gen is not None and g != gen:
                continue
            if regex is None or re.search(regex, text):
                out.append(text)
        return out

    def matches(self, regex, since=0, gen=None):
        """re.Match objects for stdout lines from `since` that match."""
        r = re.compile(regex) if isinstance(regex, str) else regex
        out = []
        for text in self.lines(None, since, gen):
            m = r.search(text)
            if m:
                out.append(m)
        return out

    def wait_for(self, regex, timeout=20.0, since=0):
        """First line at or after `since` matching regex; returns the match.
        Raises Timeout (with the node's recent output) when it does not come,
        or Failure at once if the process has exited."""
        r = re.compile(regex) if isinstance(regex, str) else regex
        deadline = time.monotonic() + timeout
        pos = since
        with self._cv:
            while True:
                while pos < len(self._lines):
                    m = r.search(self._lines[pos][2])
                    pos += 1
                    if m:
                        return m
                if self._eof:
                    raise Failure("%s: exited (rc %s) while waiting for /%s/\n%s" % (
                        self.name, self.proc.poll(), r.pattern, self.tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout("%s: no line /%s/ within %.0f s\n%s" % (
                        self.name, r.pattern, timeout, self.tail()))
                self._cv.wait(min(left, 0.5))

    def wait_count(self, regex, count, timeout=20.0, since=0):
        """Wait until at least `count` lines from `since` match; returns them."""
        r = re.compile(regex) if isinstance(regex, str) else regex
        deadline = time.monotonic() + timeout
        n = 0
        while True:
            got = self.lines(r, since)
            n = len(got)
            if n >= count:
                return got
            if not self.running() and self._eof:
                raise Failure("%s: exited with %d/%d lines /%s/" % (
                    self.name, n, count, r.pattern))
            if time.monotonic() >= deadline:
                raise Timeout("%s: %d/%d lines /%s/ within %.0f s\n%s" % (
                    self.name, n, count, r.pattern, timeout, self.tail()))
            with self._cv:
                self._cv.wait(0.25)

    _sync_n = 0

    def sync(self, timeout=20.0):
        """Round trip through the command reader: everything the node printed
        for earlier commands is printed before this returns. Uses an unknown
        command, whose error line the contract fixes."""
        Node._sync_n += 1
        token = "/sync-%d" % Node._sync_n
        m = self.send(token)
        self.wait_for(r"^! unknown command %s\b" % re.escape(token), timeout, since=m)

    def command(self, line, timeout=20.0):
        """Send a command, wait for the node to have handled it (sync), and
        return the lines it printed in between (other events may interleave)."""
        m = self.send(line)
        self.sync(timeout)
        return [l for l in self.lines(None, m) if not l.startswith("! unknown command /sync-")]

    def tail(self, n=25):
        with self._cv:
            out = [t for _, _, t in self._lines[-n:]]
            err = list(self._err[-n:])
        return ("  --- %s stdout (last %d) ---\n    " % (self.name, len(out)) +
                "\n    ".join(out) +
                "\n  --- %s stderr (last %d) ---\n    " % (self.name, len(err)) +
                "\n    ".join(err))

    def stderr_lines(self):
        with self._cv:
            return list(self._err)

    # -- contract helpers ----------------------------------------------------

    def wait_banner(self, timeout=30.0):
        """Wait until the node says where it listens (it is ready)."""
        return self.wait_for(r"^\* listening on (\S+)", timeout,
                             since=self.gen_start())

    def gen_start(self):
        with self._cv:
            for i, (_, g, _) in enumerate(self._lines):
                if g == self.generation:
                    return i
            return len(self._lines)

    def invite(self, room=None, timeout=20.0):
        m = self.send("/invite" + (" " + room if room else ""))
        return self.wait_for(INVITE_RE, timeout, since=m).group(2)

    def who(self, timeout=20.0):
        """[(nick, role, fingerprint, status)] of the current room."""
        out = []
        for l in self.command("/who", timeout):
            m = WHO_RE.match(l)
            if m:
                out.append(m.groups())
        return out

    def messages(self, since=0, gen=None):
        """[(nick, text)] of message lines from `since`."""
        return [(m.group(4), m.group(5)) for m in self.matches(MSG_RE, since, gen)]


class Test:
    """Checks, an overall deadline, clean-up, and the final summary line."""

    def __init__(self, name, deadline_s=600.0):
        self.name = name
        self.deadline_s = deadline_s
        self.passed = 0
        self.failed = 0
        self.nodes = []
        if len(sys.argv) < 2:
            print("usage: %s PATH/TO/kith" % sys.argv[0], file=sys.stderr)
            sys.exit(2)
        self.binary = os.path.abspath(sys.argv[1])
        if not os.access(self.binary, os.X_OK):
            print("%s: not an executable: %s" % (name, self.binary), file=sys.stderr)
            sys.exit(2)

    def node(self, name, **kw):
        n = Node(self.binary, name, **kw)
        self.nodes.append(n)
        return n

    def check(self, cond, what, detail=""):
        """Record a check; the test goes on either way. Returns cond."""
        if cond:
            self.passed += 1
            log("ok   %s" % what)
        else:
            self.failed += 1
            log("FAIL %s%s" % (what, ("\n" + detail) if detail else ""))
        return bool(cond)

    def require(self, cond, what, detail=""):
        """A check the rest of the test depends on: stops the test if false."""
        if not self.check(cond, what, detail):
            raise Failure(what)

    def step(self, what):
        log("== %s" % what)

    def _alarm(self, signum, frame):
        raise Timeout("overall deadline of %.0f s reached" % self.deadline_s)

    def run(self, body):
        """Run body(test); clean up; print the summary; exit 0 only if every
        check passed and the body finished."""
        signal.signal(signal.SIGALRM, self._alarm)
        signal.alarm(int(self.deadline_s))
        atexit.register(_cleanup_all)
        # ctest or a person stopping us: still clean up.
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
        finished = False
        log("%s: kith binary %s, KITH_NET_SCALE=%s" % (
            self.name, self.binary, os.environ.get("KITH_NET_SCALE", "1.0")))
        try:
            body(self)
            finished = True
        except Failure as e:
            self.failed += 1
            log("FAIL %s" % e)
        except Exception as e:  # noqa: BLE001 - a harness bug is a failure too
            import traceback

            self.failed += 1
            log("FAIL unexpected %s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
        finally:
            signal.alarm(0)
            if not finished:
                for n in self.nodes:
                    log("state of %s (running=%s)\n%s" % (n.name, n.running(), n.tail(40)))
            for n in self.nodes:
                n.cleanup()
            # Any sanitizer report from any process is a failure of this test.
            for n in self.nodes:
                bad = [l for l in n.stderr_lines() if SANITIZER_RE.search(l)]
                self.check(not bad, "%s: no sanitizer reports on stderr" % n.name,
                           "\n".join(n.stderr_lines()[-80:]))
        total = self.passed + self.failed
        log("%s: %d passed, %d failed (%d checks)" % (
            self.name, self.passed, self.failed, total))
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(0 if (self.failed == 0 and finished) else 1)


def run_once(binary, args, env=None, stdin=b"", timeout=30.0):
    """Run kith to completion (usage errors, --version...):
    (exit code, stdout text, stderr text). Never hangs: killed at timeout."""
    e = dict(os.environ)
    e.pop("KITH_PASSPHRASE", None)
    e.update(env or {})
    log("run: %s %s" % (os.path.basename(binary), " ".join(args)))
    try:
        r = subprocess.run([binary] + list(args), input=stdin, capture_output=True, env=e,
                           timeout=timeout, cwd=tempfile.gettempdir(),
                           preexec_fn=_pdeathsig)
    except subprocess.TimeoutExpired as ex:
        raise Timeout("%s %s: still running after %.0f s" % (binary, args, timeout)) from ex
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def _cleanup_all():
    for n in _ALL_NODES:
        n.cleanup()


# -- scenario helpers shared by the tests ----------------------------------


def form_room(t, founder, joiners, room="bookclub", timeout=60.0):
    """founder creates `room` and admits each joiner with a fresh invite.
    Waits until every node's /who lists all of them."""
    founder.wait_banner()
    for j in joiners:
        j.wait_banner()
    m = founder.send("/create " + room)
    founder.wait_for(r"^\* created room %s\b" % re.escape(room), 20, since=m)
    t.check(True, "%s created room %s" % (founder.name, room))
    for j in joiners:
        code = founder.invite()
        t.check(code.startswith("kith1:"), "%s: invite code %s..." % (founder.name, code[:16]))
        m = j.send("/join " + code)
        jm = j.wait_for(r"^(\* joined room (\S+) \((\d+) members?\)|! join failed.*)$",
                        timeout, since=m)
        t.require(jm.group(0).startswith("* joined"), "%s joined %s" % (j.name, room),
                  jm.group(0))
        founder.wait_for(r"^\* %s joined %s\b" % (re.escape(j.nick), re.escape(room)),
                         timeout)
    everyone = [founder] + list(joiners)
    want = sorted(n.nick for n in everyone)
    deadline = time.monotonic() + timeout
    for n in everyone:
        while True:
            who = n.who()
            nicks = sorted(w[0] for w in who)
            if nicks == want:
                break
            if time.monotonic() > deadline:
                t.require(False, "%s: /who lists %s" % (n.name, want), "got %s" % who)
            time.sleep(0.5)
        t.check(True, "%s: /who lists %s" % (n.name, ", ".join(want)))
    return everyone


def wait_online(nodes, timeout=30.0):
    """Wait (bounded, without failing) until each node's /who shows every
    other member online; returns True if they all did."""
    deadline = time.monotonic() + timeout
    while True:
        ok = True
        for n in nodes:
            st = [w[3] for w in n.who()]
            if not st or any(s == "offline" for s in st):
                ok = False
                break
        if ok or time.monotonic() > deadline:
            return ok
        time.sleep(0.5)
