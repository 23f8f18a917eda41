"""test_irc_client: a real IRC client, irssi, against the IRC gateway.

A runs `kith --irc PORT`; B is a plain line client on another node; both are
in room bookclub. irssi (in a private tmux server, so it has a terminal)
connects to A's gateway with the generated password, gets #bookclub at
registration, and:
  - a line B types shows up in irssi's window (tmux capture-pane);
  - a line sent from irssi (/msg #bookclub ...) reaches B as alice's message.

Skipped (exit 77) when irssi or tmux is not installed: tools/setup installs
both (docs/decisions.md).

usage: python3 test_irc_client.py PATH/TO/kith
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402

TIME = r"\[\d\d:\d\d\]"
SKIP = 77


class Tmux:
    """A private tmux server (its own socket) holding one window."""

    def __init__(self):
        self.sock = "kith-test-%d" % os.getpid()
        self.started = False

    def run(self, *args, check=True):
        r = subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null"] + list(args),
                           capture_output=True, timeout=10)
        if check and r.returncode != 0:
            raise kithnet.Failure("tmux %s: %s" % (args[0], r.stderr.decode(errors="replace")))
        return r.stdout.decode("utf-8", "replace")

    def start(self, command):
        self.run("new-session", "-d", "-s", "irc", "-x", "200", "-y", "50", command)
        self.started = True

    def keys(self, text):
        self.run("send-keys", "-t", "irc", "-l", text)
        self.run("send-keys", "-t", "irc", "Enter")

    def screen(self):
        return self.run("capture-pane", "-p", "-J", "-t", "irc", "-S", "-200")

    def wait(self, regex, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            m = re.search(regex, text, re.M)
            if m:
                return m
            time.sleep(0.2)
        raise kithnet.Failure("irssi's screen never showed /%s/; it shows:\n%s"
                              % (regex, self.screen()))

    def stop(self):
        if self.started:
            self.run("kill-server", check=False)
            self.started = False


def body(t):
    a = t.node("A", nick="alice", extra_args=["--irc", str(kithnet.free_port()), "--no-lan"])
    b = t.node("B", nick="bob", extra_args=["--no-lan"])
    a.start()
    b.start()
    m = a.wait_for(r"^\* IRC gateway on 127\.0\.0\.1:(\d+), password ([A-Za-z0-9_-]+) ", 30)
    port, password = m.group(1), m.group(2)
    kithnet.form_room(t, a, [b])
    kithnet.wait_online([a, b])

    tmux = Tmux()
    irssi_home = tempfile.mkdtemp(prefix="kith-irssi-")
    try:
        t.step("irssi connects to the gateway")
        # TERM inside tmux is tmux's; irssi gets a fresh home (no config).
        tmux.start("irssi --home=%s -n alice -c 127.0.0.1 -p %s -w %s"
                   % (irssi_home, port, password))
        tmux.wait(r"Welcome to kith, alice", 30)
        t.check(True, "irssi registered with the gateway (001 welcome)")
        tmux.wait(r"#bookclub", 20)
        tmux.keys("/window goto #bookclub")
        tmux.wait(r"\[\d+:\S*#bookclub\b", 10)  # the status bar names the window
        t.check(True, "irssi is in #bookclub (the room, joined at registration)")

        t.step("kith -> irssi")
        b.send("hello irssi, this is bob on another node")
        tmux.wait(r"<\s*[@+ ]?bob> hello irssi, this is bob on another node", 20)
        t.check(True, "a line from B's kith client shows in irssi's window")

        t.step("irssi -> kith")
        mb = b.mark()
        tmux.keys("hello bob, from irssi")
        b.wait_for(r"^%s <alice> hello bob, from irssi$" % TIME, 20, since=mb)
        t.check(True, "a line typed in irssi reaches B as alice's message")
        tmux.keys("/me waves from irssi")
        b.wait_for(r"^%s \* alice waves from irssi$" % TIME, 20, since=mb)
        t.check(True, "irssi's /me reaches B as an action")
        a_lines = a.lines(r"<alice> hello bob, from irssi", since=0)
        t.check(a_lines, "A's own line client shows what irssi sent", a.tail(10))

        t.step("edits and reactions reach irssi in words")
        b.send("/react +1")
        tmux.wait(r"\* bob reacted \+1 to alice: \"waves from irssi\"", 20)
        t.check(True, "B's reaction shows in irssi as an action")
        b.send("/edit hello irssi, bob here (edited)")
        tmux.wait(r"\* bob edited: hello irssi, bob here \(edited\)", 20)
        t.check(True, "B's edit shows in irssi as an action")

        t.step("irssi quits")
        tmux.keys("/quit bye")
        time.sleep(0.5)
        t.check(a.running() and b.running(), "both nodes keep running after irssi quits")
    finally:
        tmux.stop()
        shutil.rmtree(irssi_home, ignore_errors=True)
    t.check(b.quit() == 0 and a.quit() == 0, "both exit 0")


if __name__ == "__main__":
    missing = [p for p in ("irssi", "tmux") if not shutil.which(p)]
    if missing:
        print("test_irc_client: SKIPPED: %s not installed (tools/setup installs it)"
              % " and ".join(missing), flush=True)
        sys.exit(SKIP)
    kithnet.Test("test_irc_client", deadline_s=120).run(body)
