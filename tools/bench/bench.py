"""The body of tools/bench: figures measured on real kith nodes on loopback.

tools/bench/run (the executable beside this file) parses the options, builds
what is missing and calls run(). Everything here drives real `kith`
processes through their line client with the harness tests/net/kithnet.py
(imported, not copied): one process per node, each in its own temporary
home, on 127.0.0.1, with --no-lan so that no beacon from another test on the
machine reaches it. docs/bench.md says what each figure means.

Phases, in order:
  floor    bench_floor: CPU us per message for BLAKE2b + XChaCha20-Poly1305
           open + Ed25519 verify of a ~400-byte envelope;
  room     N members (default 16) form a room by invite, then each sends one
           warm-up message and waits for everybody's;
  steady   messages of PAYLOAD bytes at RATE per second, senders in turn:
           latency from the write to the sender's stdin to each receiver's
           stdout line; /stats deltas give copies and wire bytes per delivery;
  burst    one member sends a burst; the others' CPU time per delivered
           message is the receive cost;
  idle     the N nodes do nothing for a while: CPU percent and RSS;
  catchup  a fresh small room; one member goes away while the others
           exchange C messages; it comes back: messages per second until it
           holds them all, and its peak RSS (VmHWM).

Standard library only.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "net"))
import kithnet  # noqa: E402
from kithnet import log  # noqa: E402

# Bench message bodies: a kind letter, a 7-digit index, a space, padding.
# "B" messages are timed (steady and burst), "C" only counted (catch-up).
BODY_RE = re.compile(r"^\[\d\d:\d\d\] (?:#\S+ )?<[^>]*> ([BC])(\d{7}) ")
ROOMS_RE = re.compile(r"^\* (\S+)\s+(\d+) members?, (\d+) online, (\d+) messages?")
STATS_RE = re.compile(r"^\* stats ((?:\w+=\d+ ?)+)$")

TARGETS = {
    "receive_ratio_max": 2.0,
    "redundant_per_delivery_max": 1.0,
    "wire_per_payload_max": 3.0,
    "catchup_msgs_per_s_min": 18000.0,
    "catchup_peak_rss_mb_max": 64.0,
    "idle_cpu_pct_total_max": 1.0,
    "idle_rss_mb_max": 10.0,
}


# "* caught up ROOM: N messages", or "* catch-up paused at ROOM: N/TOTAL"
# (the N delivered so far were not printed either).
CAUGHT_UP_RE = re.compile(r"^\* (?:caught up|catch-up paused at) (\S+): ([\d,]+)[ /]")


def body_text(kind, idx, size):
    head = "%s%07d " % (kind, idx)
    return head + "x" * max(0, size - len(head))


class BenchNode(kithnet.Node):
    """A kithnet.Node that does not keep bench message lines: it records the
    arrival time of each "B" message (first arrival only) and counts "C"
    messages, so a catch-up of 100,000 messages costs the harness little
    memory. Every other line is kept as kithnet keeps it."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.recv_t = {}  # B index -> monotonic time of first print
        self.b_prints = 0  # B lines printed (a duplicate would make it exceed len(recv_t))
        self.c_prints = 0

    def _read_out(self, proc, gen):
        for raw in iter(proc.stdout.readline, b""):
            now = time.monotonic()
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            m = BODY_RE.match(text)
            with self._cv:
                if m:
                    if m.group(1) == "B":
                        self.b_prints += 1
                        self.recv_t.setdefault(int(m.group(2)), now)
                    else:
                        self.c_prints += 1
                else:
                    self._lines.append((now, gen, text))
                self._cv.notify_all()
        with self._cv:
            if gen == self.generation:
                self._eof = True
            self._cv.notify_all()

    # -- /proc ---------------------------------------------------------------

    def pid(self):
        return self.proc.pid if self.running() else None

    def cpu_s(self):
        """CPU seconds used by the process so far: the sum of its threads'
        on-CPU time from /proc/PID/task/*/schedstat (nanoseconds, so a 10 s
        idle window is measured precisely), or utime + stime from
        /proc/PID/stat (clock ticks) where schedstat is missing."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            total = 0
            tasks = os.listdir("/proc/%d/task" % pid)
            for t in tasks:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    total += int(f.read().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def status_kb(self, key):
        """A /proc/PID/status field in kB (VmRSS, VmHWM), or None."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None

    # -- client commands -----------------------------------------------------

    def stats(self):
        """The node's /stats counters as a dict."""
        for line in self.command("/stats", timeout=60):
            m = STATS_RE.match(line)
            if m:
                return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
        raise kithnet.Failure("%s: /stats printed no stats line (is kith too old?)" % self.name)

    def room_messages(self, room, timeout=60):
        """The message count /rooms shows for `room`, or None."""
        for line in self.command("/rooms", timeout=timeout):
            m = ROOMS_RE.match(line)
            if m and m.group(1) == room:
                return int(m.group(4))
        return None


class Shim:
    """What kithnet.form_room needs from a kithnet.Test (check, require),
    without Test's command line and exit handling."""

    def check(self, cond, what, detail=""):
        if not cond:
            log("bench: not as expected: %s %s" % (what, detail))
        return bool(cond)

    def require(self, cond, what, detail=""):
        if not cond:
            raise kithnet.Failure("%s %s" % (what, detail))


def percentile(sorted_vals, p):
    """Nearest-rank percentile of a sorted list (None if empty)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def rnd(x, nd=3):
    return None if x is None else round(x, nd)


def wait_until(cond, timeout, step=0.05):
    """Poll cond() until true or timeout; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def dir_bytes(path):
    """Total size of the files under path (0 if it is missing)."""
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def stats_delta(before, after):
    keys = set(before) & set(after)
    return {k: after[k] - before[k] for k in keys}


def sum_key(deltas, key):
    return sum(d.get(key, 0) for d in deltas)


WIRE_KINDS = ("msg", "ihave", "want", "prune", "sync", "op", "addr")


def wire_breakdown(deltas, delivered):
    """Bytes sent per delivery by frame kind ({} if kith has no such
    counters)."""
    if not delivered or not any("wire_msg_out" in d for d in deltas):
        return {}
    out = {k: rnd(sum_key(deltas, "wire_%s_out" % k) / delivered, 1) for k in WIRE_KINDS}
    known = sum(sum_key(deltas, "wire_%s_out" % k) for k in WIRE_KINDS)
    out["other"] = rnd((sum_key(deltas, "bytes_out") - known) / delivered, 1)
    return out


# -- phases ------------------------------------------------------------------


def run_floor(floor_bin, iterations):
    log("== floor: %s %d" % (floor_bin, iterations))
    out = subprocess.run([floor_bin, str(iterations), "400"], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    f = json.loads(out.strip().splitlines()[-1])
    log("floor: %.2f us (verify %.2f, open %.2f, hash %.2f)" % (
        f["floor_us"], f["verify_us"], f["open_us"], f["hash_us"]))
    return f


def start_room(binary, names, room, extra=()):
    nodes = [BenchNode(binary, n, extra_args=["--no-lan"] + list(extra)) for n in names]
    for n in nodes:
        n.start()
    kithnet.form_room(Shim(), nodes[0], nodes[1:], room=room, timeout=120)
    return nodes


def warm_up(nodes, timeout):
    """Each node sends one message; wait until every node printed all of
    them, so that every link is up before anything is measured."""
    marks = [n.mark() for n in nodes]
    for i, n in enumerate(nodes):
        n.send("warm-up from %s" % n.name)
    for n, m in zip(nodes, marks):
        n.wait_count(r"> warm-up from ", len(nodes), timeout=timeout, since=m)


def run_steady(nodes, count, rate, payload, timeout):
    """Senders in turn at a steady rate; latency per (message, receiver)."""
    log("== steady: %d messages of %d bytes at %.1f/s from %d members" % (
        count, payload, rate, len(nodes)))
    s0 = [n.stats() for n in nodes]
    c0 = [n.cpu_s() for n in nodes]
    t_send = {}
    sender_of = {}
    start = time.monotonic() + 0.2
    for k in range(count):
        due = start + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        i = k % len(nodes)
        t_send[k] = time.monotonic()
        sender_of[k] = i
        nodes[i].send(body_text("B", k, payload))
    sent_dur = time.monotonic() - start

    def all_in():
        return all(len(n.recv_t) >= count for n in nodes)

    complete = wait_until(all_in, timeout, 0.1)
    time.sleep(1.0)  # let the last IHAVE/prune traffic land in the counters
    c1 = [n.cpu_s() for n in nodes]
    s1 = [n.stats() for n in nodes]
    lat = []
    missing = 0
    for k in range(count):
        for i, n in enumerate(nodes):
            if i == sender_of[k]:
                continue
            t = n.recv_t.get(k)
            if t is None:
                missing += 1
            else:
                lat.append((t - t_send[k]) * 1000.0)
    lat.sort()
    deltas = [stats_delta(a, b) for a, b in zip(s0, s1)]
    delivered = sum_key(deltas, "delivered")
    dups = sum_key(deltas, "dups_in")
    msgs_in = sum_key(deltas, "msgs_in")
    bytes_in = sum_key(deltas, "bytes_in")
    dup_prints = sum(n.b_prints - len(n.recv_t) for n in nodes)
    cpu = sum(b - a for a, b in zip(c0, c1) if a is not None and b is not None)
    res = {
        "members": len(nodes),
        "messages": count,
        "payload_bytes": payload,
        "rate_per_s": rate,
        "send_seconds": rnd(sent_dur),
        "complete": complete,
        "missing": missing,
        "duplicate_prints": dup_prints,
        "samples": len(lat),
        "p50_ms": rnd(percentile(lat, 50)),
        "p90_ms": rnd(percentile(lat, 90)),
        "p99_ms": rnd(percentile(lat, 99)),
        "max_ms": rnd(lat[-1] if lat else None),
        "delivered": delivered,
        "msgs_in": msgs_in,
        "dups_in": dups,
        "bytes_in": bytes_in,
        "bytes_out": sum_key(deltas, "bytes_out"),
        "copies_per_delivery": rnd(msgs_in / delivered if delivered else None),
        "redundant_per_delivery": rnd(dups / delivered if delivered else None),
        "wire_per_payload": rnd(bytes_in / (delivered * payload) if delivered else None),
        "cpu_us_per_delivery": rnd(cpu * 1e6 / delivered if delivered else None, 1),
        # Where the wire bytes go: lazy announcements, pulls and prunes sent.
        "ihave_out": sum_key(deltas, "ihave_out"),
        "want_out": sum_key(deltas, "want_out"),
        "prune_out": sum_key(deltas, "prune_out"),
        "msgs_out": sum_key(deltas, "msgs_out"),
        "ihave_ids_out": sum_key(deltas, "ihave_ids_out"),
        # Wire bytes sent per delivery, by frame kind (session overhead
        # included); "other" is handshakes and the rest.
        "wire_per_delivery": wire_breakdown(deltas, delivered),
    }
    log("steady: wire bytes per delivery by frame kind: %s" % " ".join(
        "%s %s" % kv for kv in sorted(res["wire_per_delivery"].items())))
    log("steady: p50 %s ms, p90 %s ms, p99 %s ms; %s redundant copies and %sx payload on the "
        "wire per delivery; %d missing" % (res["p50_ms"], res["p90_ms"], res["p99_ms"],
                                           res["redundant_per_delivery"],
                                           res["wire_per_payload"], missing))
    return res


def run_burst(nodes, count, payload, first_index, timeout):
    """Member 0 sends `count` messages at once; CPU of the others per
    message they delivered."""
    log("== burst: %d messages of %d bytes from %s" % (count, payload, nodes[0].name))
    recv = nodes[1:]
    s0 = [n.stats() for n in recv]
    c0 = [n.cpu_s() for n in recv]
    t0 = time.monotonic()
    lines = [body_text("B", first_index + k, payload) for k in range(count)]
    for j in range(0, count, 500):
        nodes[0].send_many(lines[j:j + 500])

    def all_in():
        return all(sum(1 for k in range(first_index, first_index + count) if k in n.recv_t) >= count
                   for n in recv)

    complete = wait_until(all_in, timeout, 0.05)
    secs = time.monotonic() - t0
    c1 = [n.cpu_s() for n in recv]
    s1 = [n.stats() for n in recv]
    deltas = [stats_delta(a, b) for a, b in zip(s0, s1)]
    per = []
    for d, a, b in zip(deltas, c0, c1):
        if a is not None and b is not None and d.get("delivered", 0) > 0:
            per.append((b - a) * 1e6 / d["delivered"])
    cpu = sum(b - a for a, b in zip(c0, c1) if a is not None and b is not None)
    delivered = sum_key(deltas, "delivered")
    res = {
        "messages": count,
        "receivers": len(recv),
        "complete": complete,
        "seconds": rnd(secs),
        "delivered": delivered,
        "us_per_msg": rnd(cpu * 1e6 / delivered if delivered else None, 1),
        "us_per_msg_min": rnd(min(per) if per else None, 1),
        "us_per_msg_max": rnd(max(per) if per else None, 1),
        "redundant_per_delivery": rnd(sum_key(deltas, "dups_in") / delivered if delivered else None),
        "wire_per_payload": rnd(sum_key(deltas, "bytes_in") / (delivered * payload)
                                if delivered else None),
    }
    log("burst: %s us CPU per delivered message (receivers %s..%s), %.2f s" % (
        res["us_per_msg"], res["us_per_msg_min"], res["us_per_msg_max"], secs))
    return res


def run_idle(nodes, seconds):
    log("== idle: %d nodes for %.0f s" % (len(nodes), seconds))
    time.sleep(min(3.0, seconds))  # let the last traffic settle
    c0 = [n.cpu_s() for n in nodes]
    t0 = time.monotonic()
    time.sleep(seconds)
    c1 = [n.cpu_s() for n in nodes]
    wall = time.monotonic() - t0
    rss = [n.status_kb("VmRSS") for n in nodes]
    rss = [r / 1024.0 for r in rss if r is not None]
    per = [(b - a) / wall * 100.0 for a, b in zip(c0, c1) if a is not None and b is not None]
    res = {
        "nodes": len(nodes),
        "seconds": rnd(wall),
        "cpu_pct_total": rnd(sum(per)),
        "cpu_pct_max_node": rnd(max(per) if per else None),
        "rss_mb_mean": rnd(statistics.mean(rss) if rss else None),
        "rss_mb_max": rnd(max(rss) if rss else None),
    }
    log("idle: %s%% of a core in total, RSS %s MB mean, %s MB max" % (
        res["cpu_pct_total"], res["rss_mb_mean"], res["rss_mb_max"]))
    return res


def held_count(node, room):
    """Messages of the bench a node holds as far as its output tells: the
    lines it printed plus those its "* caught up ROOM: N messages" lines
    account for (a node that reconnects to a room with a backlog of 200 or
    more reports it that way instead of printing it)."""
    done_n = 0
    for m in node.matches(CAUGHT_UP_RE, gen=node.generation):
        if m.group(1) == room:
            done_n += int(m.group(2).replace(",", ""))
    return node.c_prints + done_n


def run_catchup(binary, members, count, payload, timeout):
    """A fresh room of `members`; the last one quits, the others exchange
    `count` messages, it restarts and is timed until it holds them all."""
    log("== catch-up: %d members, the last away for %d messages" % (members, count))
    nodes = start_room(binary, ["c%02d" % i for i in range(members)], "catchup")
    try:
        warm_up(nodes, 120)
        away = nodes[-1]
        others = nodes[:-1]
        away.quit()
        t0 = time.monotonic()
        per_sender = {}
        chunk = 1000
        batches = {n.name: [] for n in others}
        for k in range(count):
            n = others[k % len(others)]
            batches[n.name].append(body_text("C", k, payload))
        for n in others:
            lines = batches[n.name]
            per_sender[n.name] = len(lines)
            for j in range(0, len(lines), chunk):
                n.send_many(lines[j:j + chunk])
        batches = None
        ok = wait_until(lambda: all(held_count(n, "catchup") >= count for n in others),
                        timeout, 0.2)
        exch_secs = time.monotonic() - t0
        if not ok:
            raise kithnet.Failure("catch-up: the online members did not exchange %d messages "
                                  "within %.0f s (%s)" % (count, timeout, ", ".join(
                                      "%s has %d" % (n.name, n.c_prints) for n in others)))
        log("catch-up: online members exchanged %d messages in %.1f s (%.0f/s)" % (
            count, exch_secs, count / exch_secs))
        want = others[0].room_messages("catchup")
        if want is None:
            raise kithnet.Failure("catch-up: /rooms on %s does not list the room" % others[0].name)

        # The envelope as stored (record framing included): a diagnostic for
        # the wire figure, since every message crosses a link at that size.
        log_bytes = dir_bytes(os.path.join(others[0].home, "logs"))

        t_start = time.monotonic()
        away.restart()
        cpu_start = 0.0
        got = [0, None]  # messages held, time

        def held():
            # A big backlog is not printed message by message: the node
            # prints progress lines and "* caught up ROOM: N messages".
            done_n = 0
            for m in away.matches(CAUGHT_UP_RE, gen=away.generation):
                if m.group(1) == "catchup":
                    done_n += int(m.group(2).replace(",", ""))
            if away.c_prints + done_n >= count or held_count(away, "catchup") >= count:
                got[0], got[1] = count, time.monotonic()
                return True
            return False

        last_poll = 0.0
        done = False
        deadline = t_start + timeout
        peak_kb = 0
        progress = []
        while time.monotonic() < deadline:
            if held():
                done = True
                break
            hwm = away.status_kb("VmHWM")
            if hwm:
                peak_kb = max(peak_kb, hwm)
            now = time.monotonic()
            if now - last_poll >= 1.0 and away.running():
                last_poll = now
                try:
                    n = away.room_messages("catchup", timeout=30)
                except kithnet.Failure:
                    n = None
                if n is not None:
                    progress.append((round(now - t_start, 2), n))
                    if n >= want:
                        got[0], got[1] = count, time.monotonic()
                        done = True
                        break
            time.sleep(0.05)
        t_end = got[1] if done else time.monotonic()
        cpu_end = away.cpu_s()
        hwm = away.status_kb("VmHWM")
        if hwm:
            peak_kb = max(peak_kb, hwm)
        secs = t_end - t_start
        # Message frames the returning member read, and how many of them were
        # copies of what it held (each online member serves the backlog).
        try:
            st = away.stats()
        except kithnet.Failure:
            st = {}
        have = count if done else max(away.c_prints, (progress[-1][1] - (want - count))
                                      if progress else 0)
        res = {
            "members": members,
            "messages": count,
            "payload_bytes": payload,
            "exchange_seconds": rnd(exch_secs),
            "exchange_msgs_per_s": rnd(count / exch_secs, 1),
            "complete": done,
            "held": have,
            "seconds": rnd(secs),
            "msgs_per_s": rnd(have / secs if secs > 0 else None, 1),
            "peak_rss_mb": rnd(peak_kb / 1024.0),
            "cpu_us_per_msg": rnd((cpu_end - cpu_start) * 1e6 / have
                                  if have and cpu_end is not None else None, 1),
            "progress": progress[-20:],
            "msgs_in": st.get("msgs_in"),
            "dups_in": st.get("dups_in"),
            "log_bytes_per_msg": rnd(log_bytes / want if want else None, 1),
        }
        log("catch-up: %s in %.2f s: %s msg/s, peak RSS %s MB" % (
            "complete" if done else "INCOMPLETE (%d of %d)" % (have, count), secs,
            res["msgs_per_s"], res["peak_rss_mb"]))
        return res
    finally:
        for n in nodes:
            n.cleanup()


# -- report ------------------------------------------------------------------


def verdict(value, limit, at_most=True):
    if value is None:
        return "n/a"
    ok = value <= limit if at_most else value >= limit
    return "met" if ok else "MISSED"


def table(r):
    rows = []
    f = r.get("floor") or {}
    b = r.get("receive") or {}
    s = r.get("steady") or {}
    c = r.get("catchup") or {}
    i = r.get("idle") or {}
    t = TARGETS

    def row(name, value, target, ok):
        rows.append((name, "-" if value is None else str(value), target, ok))

    row("crypto floor (us/msg: verify+open+hash)", f.get("floor_us"), "-", "")
    row("receive cost (CPU us/msg)", b.get("us_per_msg"), "-", "")
    row("receive cost / floor", r.get("receive_ratio"), "<= %.0fx" % t["receive_ratio_max"],
        verdict(r.get("receive_ratio"), t["receive_ratio_max"]))
    row("latency p50 (ms)", s.get("p50_ms"), "-", "")
    row("latency p90 (ms)", s.get("p90_ms"), "-", "")
    row("latency p99 (ms)", s.get("p99_ms"), "-", "")
    row("redundant copies / delivery", s.get("redundant_per_delivery"),
        "<= %.0f" % t["redundant_per_delivery_max"],
        verdict(s.get("redundant_per_delivery"), t["redundant_per_delivery_max"]))
    row("wire bytes / delivery / payload", s.get("wire_per_payload"),
        "<= %.0fx" % t["wire_per_payload_max"],
        verdict(s.get("wire_per_payload"), t["wire_per_payload_max"]))
    row("catch-up (msg/s)", c.get("msgs_per_s"), ">= %.0f" % t["catchup_msgs_per_s_min"],
        verdict(c.get("msgs_per_s"), t["catchup_msgs_per_s_min"], at_most=False))
    row("catch-up peak RSS (MB)", c.get("peak_rss_mb"), "< %.0f" % t["catchup_peak_rss_mb_max"],
        verdict(c.get("peak_rss_mb"), t["catchup_peak_rss_mb_max"]))
    row("idle CPU, all nodes (% of a core)", i.get("cpu_pct_total"),
        "< %.0f" % t["idle_cpu_pct_total_max"],
        verdict(i.get("cpu_pct_total"), t["idle_cpu_pct_total_max"]))
    row("idle RSS per node, max (MB)", i.get("rss_mb_max"), "< %.0f" % t["idle_rss_mb_max"],
        verdict(i.get("rss_mb_max"), t["idle_rss_mb_max"]))
    w = max(len(x[0]) for x in rows)
    out = ["%-*s  %12s  %8s  %s" % (w, "figure", "measured", "target", "")]
    out.append("-" * (w + 34))
    for name, v, tg, ok in rows:
        out.append("%-*s  %12s  %8s  %s" % (w, name, v, tg, ok))
    notes = []
    if s:
        notes.append("latency: %d members, %d messages of %d bytes at %s/s, senders in turn; "
                     "includes the sender's group-commit fdatasync; %d missing" % (
                         s["members"], s["messages"], s["payload_bytes"], s["rate_per_s"],
                         s["missing"]))
    if c:
        notes.append("catch-up: %d messages, %d-member room, %s" % (
            c["messages"], c["members"], "complete" if c["complete"] else
            "INCOMPLETE: %d held" % c["held"]))
    m = r.get("machine") or {}
    notes.append("machine: %s CPUs, load average %s at start, %s at end" % (
        m.get("cpus"), m.get("load_start"), m.get("load_end")))
    return "\n".join(out + [""] + notes)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def run(opts):
    """Run every phase; print the BENCH line and the table. Returns the exit
    code: 0 when every phase ran (whatever the figures), 1 otherwise."""
    r = {"bench": 1, "quick": opts.quick, "kith": opts.kith,
         "machine": {"cpus": os.cpu_count(), "load_start": loadavg()},
         "targets": TARGETS, "errors": []}
    nodes = []

    def phase(name, fn):
        try:
            r[name] = fn()
        except Exception as e:  # noqa: BLE001 - a phase failing is reported, the rest goes on
            log("bench: %s failed: %s: %s" % (name, type(e).__name__, e))
            r[name] = None
            r["errors"].append("%s: %s" % (name, str(e).splitlines()[0] if str(e) else
                                           type(e).__name__))

    phase("floor", lambda: run_floor(opts.floor, opts.floor_iterations))
    try:
        log("== room: %d members" % opts.members)
        nodes = start_room(opts.kith, ["n%02d" % i for i in range(opts.members)], "bench")
        warm_up(nodes, 120)
        room_ok = True
    except Exception as e:  # noqa: BLE001
        log("bench: room failed: %s: %s" % (type(e).__name__, e))
        r["errors"].append("room: %s" % (str(e).splitlines()[0] if str(e) else type(e).__name__))
        room_ok = False
    if room_ok:
        phase("steady", lambda: run_steady(nodes, opts.messages, opts.rate, opts.payload,
                                           opts.timeout))
        phase("receive", lambda: run_burst(nodes, opts.burst, opts.payload, opts.messages,
                                           opts.timeout))
        phase("idle", lambda: run_idle(nodes, opts.idle))
    for n in nodes:
        n.cleanup()
    if opts.catchup > 0:
        phase("catchup", lambda: run_catchup(opts.kith, opts.catchup_members, opts.catchup,
                                             opts.payload, opts.timeout))
    fl = (r.get("floor") or {}).get("floor_us")
    rc = (r.get("receive") or {}).get("us_per_msg")
    r["receive_ratio"] = rnd(rc / fl if fl and rc else None, 2)
    r["machine"]["load_end"] = loadavg()
    print("BENCH " + json.dumps(r, sort_keys=True, separators=(",", ":")), flush=True)
    print(table(r), flush=True)
    return 0 if not r["errors"] else 1
