"""test_demo: `kith demo` through a pipe.

The demo starts three bots (kith demo-bot processes in temporary homes under
$TMPDIR); they join the demo room, greet, answer and react. After /quit,
and again after SIGTERM, no bot process is left and the temporary directory
is gone.

usage: python3 test_demo.py PATH/TO/kith
"""

import os
import re
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402

TIME = r"\[\d\d:\d\d\]"
BOTS = ("ada", "grace", "cy")


class DemoNode(kithnet.Node):
    def argv(self):
        return [self.binary, "demo", "--nick", self.nick] + self.extra_args


def bot_pids(tmp):
    """Processes whose command line names a home under tmp (the bots)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"demo-bot" in argv and any(a.startswith(tmp.encode()) for a in argv):
            out.append(int(p))
    return out


def wait_gone(tmp, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not bot_pids(tmp) and not os.listdir(tmp):
            return True
        time.sleep(0.1)
    return False


def run_demo(t, tmp, stop):
    d = t.node("D-" + stop, nick="visitor", env={"TMPDIR": tmp})
    d.__class__ = DemoNode
    d.start()
    d.wait_for(r"^\* created room demo$", 30)
    t.check(True, "the demo created room demo")
    for b in BOTS[:2]:
        d.wait_for(r"^\* %s joined demo$" % b, 30)
    t.check(True, "ada and grace joined")
    d.wait_for(r"^%s <ada> hi visitor!" % TIME, 30)
    t.check(True, "ada greets the visitor by name")
    dirs = os.listdir(tmp)
    t.check(len(dirs) == 1 and dirs[0].startswith("kith-demo-"),
            "one temporary directory under $TMPDIR", str(dirs))
    pids = bot_pids(tmp)
    t.check(len(pids) == 3, "three bot processes run", str(pids))
    if stop == "quit":
        m = d.send("hello bots, anyone there?")
        d.wait_for(r"^%s <ada> I got \"hello bots, anyone there\?\" from your node" % TIME,
                   30, since=m)
        t.check(True, "ada answers what the visitor says")
        d.wait_for(r"^%s \* grace reacted \S+ to visitor: \"hello bots, anyone there\?\"$"
                   % TIME, 30, since=m)
        t.check(True, "grace reacts to it")
        d.wait_for(r"^\* cy joined demo$", 30)
        d.wait_for(r"^%s <cy> hello visitor, I'm cy\. I joined late and caught up on the "
                   r"(\d+) messages?" % TIME, 30)
        t.check(True, "cy joins late and says it caught up")
        m = d.send("what is this?")
        d.wait_for(r"^%s <cy> good question, visitor!" % TIME, 30, since=m)
        t.check(True, "cy answers a question")
        h = d.command("/history 20")
        t.check([l for l in h if re.search(r"<visitor> hello bots", l)]
                and [l for l in h if "\u21b3" in l and "grace" in l],
                "/history shows the conversation and grace's reaction", "\n".join(h))
        t.check(d.quit() == 0, "/quit ends the demo with exit 0")
    else:
        t.check(d.kill(signal.SIGTERM) == 0, "SIGTERM ends the demo with exit 0")
    t.check(wait_gone(tmp), "after %s: no bot process and no temporary file is left" % stop,
            "pids %s, files %s" % (bot_pids(tmp), os.listdir(tmp)))


def body(t):
    tmp = tempfile.mkdtemp(prefix="kith-demo-test-")
    try:
        t.step("kith demo, ended with /quit")
        run_demo(t, tmp, "quit")
        t.step("kith demo, ended with SIGTERM")
        run_demo(t, tmp, "sigterm")
        rc, out, err = kithnet.run_once(t.binary, ["demo", "--home", tmp])
        t.check(rc == 2 and "temporary home" in err, "kith demo --home is refused (exit 2)",
                "rc %s err %r" % (rc, err))
    finally:
        for p in bot_pids(tmp):
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    kithnet.Test("test_demo", deadline_s=180).run(body)
