#!/usr/bin/env python3
"""The timing loops of bench/fleet.sh, over persistent HTTP/1.1 connections (http.client).

  latency A_ADMIN B_ADMIN IDS URLS CHANGES POLL_MS OUT.json
      CHANGES changes through node A's admin API, one at a time: of each ten, eight PATCH a
      seeded backend's weight (to a value it does not have yet, the seeded backends taken in
      turn), the ninth adds a backend (POST, id `x<n>`), the tenth removes it (DELETE). For each: `commit_ms`, from sending the
      request to A until A's answer (the store committed it); `effect_ms`, from sending it
      until node B's `GET /admin/backends/<id>` shows it (the new weight; 200 for an add;
      404 for a removal), B polled every POLL_MS over one kept-alive connection from the
      moment the request leaves. A separate thread writes, so B is polled while A answers.
  churn A_ADMIN IDS RATE_PER_MIN SECONDS OUT.json
      PATCH weights through A at RATE_PER_MIN, paced evenly (each send at its slot; a late
      one is sent at once, not skipped), the seeded backends in turn; counts the failures
      (a status other than 200, or no answer) and records the last committed revision.
  agree A_ADMIN B_ADMIN REVISION TIMEOUT_S
      Wait until both nodes report applied_revision >= REVISION in GET /admin/fleet, then
      compare their GET /admin/backends (id, url, weight, labels, draining). Prints a JSON
      line; exits 1 when they disagree or do not get there in time.

  crosscheck RAW_DIR ROUNDS
      Markdown: node B's own log as a check of the poller (for each change, from sending the
      request to A until B logged `fleet state applied revision=N` for its revision), p50, p99
      and max per round and their median (min-max); the poll cadence; the five slowest
      changes of all rounds with their commit, B's-log and write->effect times.

Addresses are host:port of the admin listeners; IDS and URLS are comma-separated.
"""

import http.client
import json
import sys
import threading
import time


class Conn:
    """One kept-alive HTTP/1.1 connection, reopened after an error."""

    def __init__(self, addr, timeout=10.0):
        host, port = addr.rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                text = response.read()
                return response.status, text
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def percentile(values, p):
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def summary(values):
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def latency(a_addr, b_addr, ids, urls, changes, poll_ms, out):
    a, b = Conn(a_addr), Conn(b_addr)
    weights = {}
    for i in ids:
        status, text = b.call("GET", f"/admin/backends/{i}")
        assert status == 200, (i, status, text)
        weights[i] = json.loads(text)["weight"]
    poll = poll_ms / 1000.0
    records = []
    added = None
    patched = 0
    for n in range(changes):
        slot = n % 10
        if slot == 8 and n + 1 < changes:
            added = f"x{n}"
            kind, bid = "add", added
            request = ("POST", "/admin/backends", {"id": bid, "url": urls[n % len(urls)]})
            expect = lambda status, body: status == 200
            want_status = 201
        elif slot == 9 and added is not None:
            kind, bid = "remove", added
            request = ("DELETE", f"/admin/backends/{bid}", None)
            expect = lambda status, body: status == 404
            want_status = 202
            added = None
        else:
            kind = "weight"
            bid = ids[patched % len(ids)]
            patched += 1
            weights[bid] = weights[bid] % 100 + 1
            want = weights[bid]
            request = ("PATCH", f"/admin/backends/{bid}", {"weight": want})
            expect = lambda status, body, want=want: status == 200 and json.loads(body)["weight"] == want
            want_status = 200
        answer = {}

        def write():
            try:
                answer["status"], answer["body"] = a.call(*request)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                answer["status"], answer["body"] = None, repr(e).encode()
            answer["t"] = time.perf_counter()

        polls = 0
        started_wall = time.time()
        started = time.perf_counter()
        writer = threading.Thread(target=write)
        writer.start()
        seen = None
        deadline = started + 30.0
        while True:
            status, body = b.call("GET", f"/admin/backends/{bid}")
            polls += 1
            now = time.perf_counter()
            if expect(status, body):
                seen = now
                break
            if now > deadline:
                break
            time.sleep(poll)
        writer.join()
        revision = None
        if answer.get("status") == want_status:
            revision = json.loads(answer["body"]).get("revision")
        records.append(
            {
                "n": n,
                "kind": kind,
                "id": bid,
                "start_wall": started_wall,
                "status": answer.get("status"),
                "revision": revision,
                "commit_ms": (answer["t"] - started) * 1000,
                "effect_ms": None if seen is None else (seen - started) * 1000,
                "polls": polls,
                "error": None if answer.get("status") == want_status else answer["body"].decode(errors="replace"),
            }
        )
        time.sleep(0.02)
    ok = [r for r in records if r["error"] is None and r["effect_ms"] is not None]
    result = {
        "changes": len(records),
        "failed": len(records) - len(ok),
        "effect": summary([r["effect_ms"] for r in ok]),
        "commit": summary([r["commit_ms"] for r in ok]),
        "by_kind": {
            kind: {
                "effect": summary([r["effect_ms"] for r in ok if r["kind"] == kind]),
                "commit": summary([r["commit_ms"] for r in ok if r["kind"] == kind]),
            }
            for kind in ("weight", "add", "remove")
        },
        "last_revision": max((r["revision"] or 0) for r in records),
        "ms_per_poll_p50": percentile([r["effect_ms"] / r["polls"] for r in ok], 50),
        "records": records,
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


def churn(a_addr, ids, rate_per_min, seconds, out):
    a = Conn(a_addr)
    interval = 60.0 / rate_per_min
    total = int(round(seconds * rate_per_min / 60.0))
    _, text = a.call("GET", "/admin/backends")
    weights = {x["id"]: x["weight"] for x in json.loads(text)["backends"] if x["id"] in ids}
    failures, commits, revision, late = [], [], 0, 0
    started = time.perf_counter()
    for n in range(total):
        slot = started + n * interval
        now = time.perf_counter()
        if now < slot:
            time.sleep(slot - now)
        elif now - slot > interval:
            late += 1
        bid = ids[n % len(ids)]
        weights[bid] = weights[bid] % 100 + 1
        t0 = time.perf_counter()
        try:
            status, body = a.call("PATCH", f"/admin/backends/{bid}", {"weight": weights[bid]})
        except Exception as e:  # noqa: BLE001 - counted as a failure
            failures.append({"n": n, "error": repr(e)})
            continue
        commits.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            failures.append({"n": n, "status": status, "body": body.decode(errors="replace")[:300]})
        else:
            revision = max(revision, json.loads(body)["revision"])
    elapsed = time.perf_counter() - started
    with open(out, "w") as f:
        json.dump(
            {
                "changes": total,
                "failed": len(failures),
                "failures": failures[:20],
                "late": late,
                "seconds": elapsed,
                "commit": summary(commits),
                "last_revision": revision,
            },
            f,
            indent=1,
        )


def agree(a_addr, b_addr, revision, timeout_s):
    a, b = Conn(a_addr), Conn(b_addr)
    deadline = time.monotonic() + timeout_s
    applied = {}
    while True:
        for name, c in (("a", a), ("b", b)):
            _, text = c.call("GET", "/admin/fleet")
            applied[name] = json.loads(text)["self"].get("applied_revision") or 0
        if min(applied.values()) >= revision or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    def state(c):
        _, text = c.call("GET", "/admin/backends")
        return sorted(
            (x["id"], x["url"], x["weight"], json.dumps(x["labels"], sort_keys=True), x["draining"])
            for x in json.loads(text)["backends"]
        )

    sa, sb = state(a), state(b)
    same = sa == sb and min(applied.values()) >= revision
    print(
        json.dumps(
            {
                "agree": same,
                "applied": applied,
                "revision": revision,
                "backends": len(sa),
                "weights_a": {x[0]: x[2] for x in sa},
                "differ": [] if sa == sb else [list(x) for x in set(sa) ^ set(sb)],
            }
        )
    )
    return 0 if same else 1


def median_range(values, fmt="%.1f"):
    values = sorted(v for v in values if v is not None)
    if not values:
        return "n/a"
    n = len(values)
    mid = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    text = fmt % mid
    return text if n == 1 else f"{text} ({fmt % values[0]}\u2013{fmt % values[-1]})"


def crosscheck(raw, rounds):
    import datetime
    import re

    rows, per_round, cadence = [], [], []
    for r in range(1, rounds + 1):
        applied = {}
        try:
            log = open(f"{raw}/logs-{r}/node-b.log")
        except OSError:
            log = []
        for line in log:
            m = re.match(r"(\S+Z) .*fleet state applied revision=(\d+)", line)
            if m:
                ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                ts = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
                applied.setdefault(int(m.group(2)), ts)
        d = json.load(open(f"{raw}/latency-{r}.json"))
        cadence.append(d.get("ms_per_poll_p50"))
        logged = []
        for x in d["records"]:
            if x["effect_ms"] is None or x["revision"] is None:
                continue
            t = applied.get(x["revision"])
            b = None if t is None else (t - x["start_wall"]) * 1000
            if b is not None:
                logged.append(b)
            rows.append((x["effect_ms"], r, x, b))
        per_round.append(summary(logged))
    print("| figure | p50 | p90 | p99 | max |")
    print("|---|---:|---:|---:|---:|")
    cells = " | ".join(median_range([s[p] for s in per_round]) for p in ("p50", "p90", "p99", "max"))
    print(f"| B's log: applied, ms after the request to A | {cells} |")
    print()
    print(f"Median time between two polls of B (the resolution of write \u2192 effect): {median_range(cadence)} ms.")
    print()
    print("The five slowest changes of all rounds (write \u2192 effect), ms:")
    print()
    print("| round | change | kind | id | revision | commit (A answered) | B's log: applied | effect seen on B | polls of B |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for effect, r, x, b in sorted(rows, key=lambda row: -row[0])[:5]:
        bt = "n/a" if b is None else "%.1f" % b
        print(f"| {r} | {x['n']} | {x['kind']} | {x['id']} | {x['revision']} | {x['commit_ms']:.1f} | {bt} | {effect:.1f} | {x['polls']} |")


def main(argv):
    command = argv[1]
    if command == "latency":
        a, b, ids, urls, changes, poll_ms, out = argv[2:]
        latency(a, b, ids.split(","), urls.split(","), int(changes), float(poll_ms), out)
    elif command == "churn":
        a, ids, rate, seconds, out = argv[2:]
        churn(a, ids.split(","), float(rate), float(seconds), out)
    elif command == "agree":
        a, b, revision, timeout_s = argv[2:]
        return agree(a, b, int(revision), float(timeout_s))
    elif command == "crosscheck":
        raw, rounds = argv[2:]
        crosscheck(raw, int(rounds))
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
