"""test_scripting: `kith node` in the background and the control socket.

  1. Two nodes run as `kith node` (no terminal) with separate homes; the
     control socket is HOME/control.sock with mode 0600.
  2. `kith` (no subcommand) attaches to a running node: /create and /invite on
     A, /join on B, each through an attached session that /quit detaches
     (the nodes keep running).
  3. `kith tail ROOM --json` on one node prints, one JSON object per line,
     what `kith send` / `kith me` sent on the other (time, room, nick, author
     fingerprint, type, text), in both directions; `kith send` exits 0 once
     the message is durable.
  4. Exit codes: 2 usage (missing text, --json without tail, stray word),
     3 no node running, 4 no such room (send and tail).
  5. `kith stop` stops a node: exit 0, the tail following it ends with 0,
     the socket file is gone, and the node process exited 0.

usage: python3 test_scripting.py PATH/TO/kith
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from kithnet import log  # noqa: E402

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def kith(t, home, *args, stdin=None, timeout=30.0):
    """Run one kith command; (exit code, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("KITH_PASSPHRASE", None)
    env["KITH_HOME"] = home
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    p = subprocess.run([t.binary, "--home", home] + list(args), input=(stdin or "").encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       timeout=timeout, cwd=tempfile.gettempdir())
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    log("kith %s -> %d%s%s" % (" ".join(args), p.returncode,
                               ("\n  out: " + out.strip().replace("\n", "\n       ")) if out.strip() else "",
                               ("\n  err: " + err.strip()) if err.strip() else ""))
    if kithnet.SANITIZER_RE.search(err):
        t.check(False, "no sanitizer report from kith %s" % args[0], err)
    return p.returncode, out, err


class Tail:
    """`kith tail` running in the background, its lines collected."""

    def __init__(self, t, home, room, json_out=True):
        env = dict(os.environ)
        env["KITH_HOME"] = home
        argv = [t.binary, "tail", room, "--home", home] + (["--json"] if json_out else [])
        log("start: %s" % " ".join(argv))
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, preexec_fn=kithnet._pdeathsig)
        self.lines = []
        self.err = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self.cv:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cv.notify_all()

    def _read_err(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self.err.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_json(self, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for l in self.lines:
                    try:
                        obj = json.loads(l)
                    except ValueError:
                        continue
                    if pred(obj):
                        return obj
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(left)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def tail_ready(t, tail, home, room, who):
    """A tail subscribes after it connected: send markers until one shows."""
    for i in range(20):
        text = "marker-%s-%d" % (who, i)
        rc, _, _ = kith(t, home, "send", room, text)
        t.require(rc == 0, "kith send of a marker exits 0")
        if tail.wait_json(lambda o, x=text: o.get("text") == x, 1.0):
            return
    t.require(False, "tail shows a marker message")


def body(t):
    a = t.node("alice", extra_args=["node"])
    b = t.node("bob", extra_args=["node"])
    for n in (a, b):
        n.start()
    for n in (a, b):
        n.wait_for(r"^\* control socket (\S+)$", 30)
    t.step("the control socket")
    for n in (a, b):
        path = os.path.join(n.home, "control.sock")
        st = os.lstat(path)
        t.check(stat.S_ISSOCK(st.st_mode), "%s: %s is a socket" % (n.name, path))
        t.check(stat.S_IMODE(st.st_mode) == 0o600, "%s: socket mode 0600" % n.name,
                oct(stat.S_IMODE(st.st_mode)))
    fpr_a = a.wait_for(r"^\* kith .* you are alice \(fingerprint (\S+)\)", 5).group(1)
    fpr_b = b.wait_for(r"^\* kith .* you are bob \(fingerprint (\S+)\)", 5).group(1)

    t.step("attach: create, invite and join through attached sessions")
    rc, out, err = kith(t, a.home, stdin="/create lab\n/invite lab\n")
    t.require(rc == 0, "attached kith on A exits 0 after end of input", err)
    t.check("* attached to the kith" in out, "attach says it attached")
    t.check("* created room lab" in out, "/create ran in the running node")
    m = re.search(r"(kith1:\S+)", out)
    t.require(m is not None, "/invite through the socket gives a code", out)
    t.check(a.running(), "A keeps running after the session detached")
    rc, out, err = kith(t, b.home, stdin="/join %s" % m.group(1))  # no final newline
    t.check(rc == 0, "attached kith on B exits 0", err)
    b.wait_for(r"^\* joined room lab\b", 30)
    t.check(True, "B joined lab (seen on B's own output)")
    a.wait_for(r"^\* bob joined lab\b", 30)

    t.step("send and tail --json, A to B and B to A")
    tb = Tail(t, b.home, "lab")
    ta = Tail(t, a.home, "lab")
    try:
        tail_ready(t, tb, a.home, "lab", "a")
        tail_ready(t, ta, b.home, "lab", "b")
        rc, _, err = kith(t, a.home, "send", "lab", "hello", "from", "alice")
        t.check(rc == 0, "kith send exits 0", err)
        o = tb.wait_json(lambda o: o.get("text") == "hello from alice")
        t.require(o is not None, "B's tail shows A's message", "\n".join(tb.lines))
        t.check(o.get("event") == "message" and o.get("type") == "text", "type text", str(o))
        t.check(o.get("room") == "lab" and len(o.get("room_id", "")) == 64, "room lab", str(o))
        t.check(o.get("nick") == "alice", "nick alice", str(o))
        t.check(o.get("author") == fpr_a, "author is A's fingerprint", str(o))
        t.check(ISO_RE.match(o.get("time", "")) is not None, "time is UTC ISO 8601", str(o))
        t.check(abs(o.get("ts", 0) / 1000.0 - time.time()) < 120, "ts is now", str(o))
        t.check(o.get("self") is False, "not ours on B", str(o))
        own = ta.wait_json(lambda o: o.get("text") == "hello from alice")
        t.check(own is not None and own.get("self") is True, "A's own tail shows it as self")

        rc, _, err = kith(t, b.home, "me", "lab", "waves \"hi\" \\ back")
        t.check(rc == 0, "kith me exits 0", err)
        o = ta.wait_json(lambda o: o.get("type") == "action")
        t.require(o is not None, "A's tail shows B's action", "\n".join(ta.lines))
        t.check(o.get("text") == "waves \"hi\" \\ back" and o.get("nick") == "bob"
                and o.get("author") == fpr_b, "action text, nick and author", str(o))
        uni = "caf\u00e9 \u2603 <tab>\there"
        rc, _, err = kith(t, a.home, "send", "lab", uni)
        t.check(rc == 0, "kith send of UTF-8 with a tab exits 0", err)
        o = tb.wait_json(lambda o: o.get("text", "").startswith("caf"))
        t.check(o is not None and o.get("text") == uni, "UTF-8 and tab survive JSON", str(o))
        for l in tb.lines:
            try:
                json.loads(l)
            except ValueError:
                t.check(False, "every tail --json line is JSON", l)
                break
        else:
            t.check(True, "every tail --json line is JSON (%d lines)" % len(tb.lines))

        t.step("exit codes")
        rc, _, err = kith(t, a.home, "send", "nosuchroom", "x")
        t.check(rc == 4 and "no such room" in err, "send to an unknown room: 4", err)
        rc, _, err = kith(t, a.home, "tail", "nosuchroom")
        t.check(rc == 4 and "no such room" in err, "tail of an unknown room: 4", err)
        rc, _, err = kith(t, a.home, "send", "lab")
        t.check(rc == 2 and "usage" in err, "send without text: 2", err)
        rc, _, err = kith(t, a.home, "tail")
        t.check(rc == 2, "tail without a room: 2", err)
        rc, _, err = kith(t, a.home, "send", "--json", "lab", "x")
        t.check(rc == 2, "--json with send: 2", err)
        rc, _, err = kith(t, a.home, "stop", "now")
        t.check(rc == 2 and a.running(), "stop with a stray word: 2, node still up", err)
        rc, _, err = kith(t, a.home, "frobnicate")
        t.check(rc == 2, "unknown word: 2", err)
        empty = tempfile.mkdtemp(prefix="kith-empty-")
        try:
            rc, _, err = kith(t, empty, "send", "lab", "x")
            t.check(rc == 3 and "no kith node" in err, "send with no node running: 3", err)
            rc, _, err = kith(t, empty, "tail", "lab", "--json")
            t.check(rc == 3, "tail with no node running: 3", err)
            rc, _, err = kith(t, empty, "stop")
            t.check(rc == 3, "stop with no node running: 3", err)
        finally:
            shutil.rmtree(empty, ignore_errors=True)

        t.step("kith stop")
        rc, _, err = kith(t, b.home, "stop")
        t.check(rc == 0, "kith stop exits 0", err)
        t.check(b.wait_exit(20) == 0, "B's node exited 0")
        t.check(tb.proc.wait(10) == 0, "the tail of B ended with exit 0 (bye)",
                "\n".join(tb.err))
        t.check(not os.path.exists(os.path.join(b.home, "control.sock")),
                "B's socket file is removed")
        rc, _, err = kith(t, b.home, "send", "lab", "x")
        t.check(rc == 3, "send after stop: 3", err)
        # Messages survive: B's node restarted in-process shows it in history.
        b.extra_args = []
        b.restart()
        b.wait_banner()
        lines = b.command("/history 50")
        t.check(any("<alice> hello from alice" in l for l in lines),
                "B's history holds the message it tailed", "\n".join(lines))
        rc, out, err = kith(t, b.home, "send", "lab", "from a script while in-process")
        t.check(rc == 0, "the interactive kith serves the control socket too", err)
        b.wait_for(r"<bob> from a script while in-process$", 20)
        t.check(b.quit() == 0, "B quits with 0")
        rc, _, err = kith(t, a.home, "stop")
        t.check(rc == 0 and a.wait_exit(20) == 0, "A stops")
        t.check(ta.proc.wait(10) == 0, "the tail of A ended with exit 0")
    finally:
        tb.stop()
        ta.stop()


if __name__ == "__main__":
    kithnet.Test("test_scripting", deadline_s=240).run(body)
