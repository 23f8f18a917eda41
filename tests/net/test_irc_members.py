"""test_irc_members: membership through the IRC gateway, both ways, with a
scripted raw IRC client on A's gateway and kith line clients B and C.

  1. IRC alice makes a room (#lab) and lets bob and carol in (*kith invite).
  2. MODE #lab +o bob makes bob an admin (kith sees it); a topic bob sets in
     kith reaches IRC as TOPIC, one set with TOPIC reaches kith; TOPIC asks
     get 332; carol's /nick is one NICK (she shares #lab and #two), and a rename to "Alice" (like the
     IRC user's nick) carries its fingerprint (Alice|xxxx); NAMES shows @
     for admins, + for members.
  3. MODE +b Alice|xxxx bans her in kith: IRC sees MODE +b and KICK, carol's node
     says she was banned; MODE -b lifts it.
  4. bob's /deop alice reaches IRC as MODE -o+v; now alice lacks the role:
     KICK and MODE +o get 482 ERR_CHANOPRIVSNEEDED.
  5. bob's /kick alice reaches IRC as a KICK of alice herself.

usage: python3 test_irc_members.py PATH/TO/kith
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithnet  # noqa: E402
from test_irc import Irc  # noqa: E402


def body(t):
    irc_port = kithnet.free_port()
    a = t.node("alice", extra_args=["node", "--irc", str(irc_port)])
    b = t.node("bob")
    c = t.node("carol")
    for x in (a, b, c):
        x.start()
    m = a.wait_for(r"^\* IRC gateway on 127\.0\.0\.1:(\d+), password ([A-Za-z0-9_-]+) ", 30)
    password = m.group(2)
    b.wait_banner()
    c.wait_banner()

    t.step("IRC alice makes #lab and lets bob and carol in")
    irc = Irc(irc_port, "irc")
    irc.register(password, "alice")
    irc.send("JOIN #lab")
    irc.expect(r"^:kith 366 alice #lab ")
    for x, nick in ((b, "bob"), (c, "carol")):
        irc.send("PRIVMSG *kith :invite #lab")
        code = irc.expect(r"^:\*kith!\S+ PRIVMSG alice :invite for #lab .*(kith1:\S+)").group(1)
        mk = x.send("/join " + code)
        x.wait_for(r"^\* joined room lab\b", 30, since=mk)
        irc.expect(r"^:%s!\S+ JOIN #lab$" % nick)
    kithnet.wait_online([b, c], 30)
    t.check(True, "bob and carol joined #lab")

    t.step("roles, topic and nick both ways")
    irc.send("MODE #lab +o bob")
    irc.expect(r"^:alice!\S+ MODE #lab \+o bob$")
    b.wait_for(r"^\* alice made you an admin in lab$", 30)
    t.check(True, "MODE +o from IRC makes bob an admin in kith, and IRC sees the MODE")
    b.send("/topic bobs topic")
    irc.expect(r"^:bob!\S+ TOPIC #lab :bobs topic$")
    t.check(True, "a kith /topic reaches IRC as TOPIC")
    mb = b.mark()
    irc.send("TOPIC #lab :from irc")
    irc.expect(r"^:alice!\S+ TOPIC #lab :from irc$")
    b.wait_for(r"^\* alice set the topic of lab: from irc$", 30, since=mb)
    irc.send("TOPIC #lab")
    irc.expect(r"^:kith 332 alice #lab :from irc$")
    t.check(True, "TOPIC from IRC sets the kith topic; TOPIC asks get 332")
    irc.send("JOIN #two")
    irc.expect(r"^:kith 366 alice #two ")
    irc.send("PRIVMSG *kith :invite #two")
    code = irc.expect(r"^:\*kith!\S+ PRIVMSG alice :invite for #two .*(kith1:\S+)").group(1)
    mk = c.send("/join " + code)
    c.wait_for(r"^\* joined room two\b", 30, since=mk)
    irc.expect(r"^:carol!\S+ JOIN #two$")
    start = irc.pos
    c.send("/nick carla")
    irc.expect(r"^:carol!\S+ NICK :carla$")
    t.check(True, "a kith rename reaches IRC as NICK")
    # carol is in #lab and #two: her rename is a message in each, but IRC
    # gets one NICK. Her next message in #two comes after both renames.
    c.send("/switch two")
    c.send("after the rename")
    irc.expect(r"^:carla!\S+ PRIVMSG #two :after the rename$")
    nicks = [ln for ln in irc.lines[start:irc.pos] if re.search(r" NICK :carla$", ln)]
    t.check(len(nicks) == 1, "one NICK line for a rename in two shared rooms", str(nicks))
    c.send("/switch lab")
    c.send("/nick Alice")
    carla = irc.expect(r"^:carla!\S+ NICK :(Alice\|[a-z2-7]{4})$").group(1)
    t.check(True, "a rename to a name like the IRC user's shows with its fingerprint: " + carla)
    # NAMES below wants the rename in #lab too: her next line there follows it.
    c.send("back in lab")
    irc.expect(r"^:%s!\S+ PRIVMSG #lab :back in lab$" % re.escape(carla))
    irc.send("NAMES #lab")
    names = set(irc.expect(r"^:kith 353 alice = #lab :(.*)$").group(1).split())
    t.check(names == {"@alice", "@bob", "+" + carla}, "NAMES: @ admins, + members", str(names))

    t.step("ban and unban with MODE b")
    mc = c.mark()
    irc.send("MODE #lab +b " + carla)
    irc.expect(r"^:alice!\S+ MODE #lab \+b %s!\*@\*$" % re.escape(carla))
    irc.expect(r"^:alice!\S+ KICK #lab %s :banned by alice$" % re.escape(carla))
    # carol's own name now looks like alice's: her node shows alice~digits.
    c.wait_for(r"^\* you were banned from lab by alice~[a-z2-7]{4}$", 30, since=mc)
    t.check(True, "MODE +b bans in kith; IRC sees MODE +b and KICK")
    irc.send("MODE #lab -b %s!*@*" % carla)
    irc.expect(r"^:alice!\S+ MODE #lab -b %s!\*@\*$" % re.escape(carla))
    t.check(True, "MODE -b lifts the ban")

    t.step("without the role: 482")
    b.send("/deop alice")
    irc.expect(r"^:bob!\S+ MODE #lab -o\+v alice alice$")
    t.check(True, "a kith /deop reaches IRC as MODE -o+v")
    irc.send("KICK #lab bob :try")
    irc.expect(r"^:kith 482 alice #lab ")
    irc.send("MODE #lab +o alice")
    irc.expect(r"^:kith 482 alice #lab ")
    irc.send("KICK #lab nobody")
    irc.expect(r"^:kith 441 alice nobody #lab ")
    t.check(True, "KICK and MODE without the role get 482; an unknown nick 441")

    t.step("a kith /kick of the IRC user")
    b.send("/kick alice")
    irc.expect(r"^:bob!\S+ KICK #lab alice :removed by bob$")
    t.check(True, "IRC sees its own KICK")
    irc.send("PING :end")
    irc.expect(r"PONG kith :end$")
    irc.close()
    t.check(b.quit() == 0, "bob quits with 0")
    t.check(c.quit() == 0, "carol quits with 0")
    a.kill(kithnet.signal.SIGTERM)
    t.check(a.proc.returncode == 0, "A stops on SIGTERM with 0")


if __name__ == "__main__":
    kithnet.Test("test_irc_members", deadline_s=240).run(body)
