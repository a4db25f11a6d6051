"""Memory per idle keep-alive connection, for bench/compare.sh (scenario idle10k).

    python3 bench/idle_conns.py PORT CONNECTIONS ROUNDS PID

Each round: sample the resident memory (VmRSS summed over PID and its descendants), open
CONNECTIONS connections to 127.0.0.1:PORT, send one `GET /` on each and read the answer (so
each is an established keep-alive connection that has served a request), wait a second,
sample again, close them all, wait two seconds and sample a third time. Prints one line per
round: "round rss_before_kb rss_open_kb rss_after_kb still_open", where still_open counts the
connections the proxy had not closed when the second sample was taken.
"""

import asyncio
import os
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: lbx-bench-idle\r\n\r\n"
PARALLEL = 256  # connections being opened at once


def tree(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, queue = [], [pid]
    while queue:
        p = queue.pop()
        out.append(p)
        queue.extend(children.get(p, []))
    return out


def rss_kb(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


async def open_one(port, sem):
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 2"):
            raise RuntimeError(f"unexpected answer: {head[:40]!r}")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        return reader, writer


async def round_(port, n, pid):
    before = rss_kb(pid)
    sem = asyncio.Semaphore(PARALLEL)
    conns = await asyncio.gather(*(open_one(port, sem) for _ in range(n)))
    await asyncio.sleep(1)
    opened = rss_kb(pid)
    still_open = sum(1 for reader, _ in conns if not reader.at_eof())
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    del conns
    await asyncio.sleep(2)
    return before, opened, rss_kb(pid), still_open


async def main():
    port, n, rounds, pid = (int(a) for a in sys.argv[1:5])
    for r in range(1, rounds + 1):
        before, opened, after, still_open = await round_(port, n, pid)
        print(r, before, opened, after, still_open, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
