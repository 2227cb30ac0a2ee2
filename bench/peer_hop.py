#!/usr/bin/python3
"""peer_hop.py PORT STREAM OUT N — the peer of bus_bench's hop, in Python
with Debian's python3-redis: read the bars of STREAM in batches with
XREADGROUP, decode each entry (the v2 fields into typed values, checking
them as a careful consumer would), publish one derived entry to OUT and
XACK, pipelined per batch. Prints the rate over N entries."""
import sys
import time
import uuid

import redis

FLOATS = ("open", "high", "low", "close", "volume")
INTS = ("open_time", "event_time")


def decode(f):
    if f.get("type") != "market.data.update" or f.get("v") != "2":
        raise ValueError("not a v2 bar")
    bar = {"symbol": f["symbol"], "interval": f["interval"], "closed": f["closed"] == "true"}
    for k in FLOATS:
        bar[k] = float(f[k])
    for k in INTS:
        bar[k] = int(f[k])
    if not (bar["low"] <= min(bar["open"], bar["close"]) and max(bar["open"], bar["close"]) <= bar["high"]):
        raise ValueError("inconsistent bar")
    return bar


def main():
    port, stream, out, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    r = redis.Redis(port=port, decode_responses=True)
    r.xgroup_create(stream, "peer-py", id="0", mkstream=True)
    done = 0
    t0 = time.monotonic()
    while done < n:
        got = r.xreadgroup("peer-py", "peer-1", {stream: ">"}, count=1000, block=1000)
        if not got:
            continue
        p = r.pipeline(transaction=False)
        ids = []
        for entry_id, f in got[0][1]:
            bar = decode(f)
            p.xadd(out, {"id": str(uuid.uuid4()), "type": "model.vote", "v": "2", "ts": str(int(time.time() * 1000)),
                         "source": "peer-py/bench", "trace": f["id"], "symbol": bar["symbol"],
                         "open_time": str(bar["open_time"]), "model": "peer-py",
                         "action": "LONG" if bar["close"] > bar["open"] else "SHORT", "confidence": "0.6"})
            ids.append(entry_id)
        p.xack(stream, "peer-py", *ids)
        p.execute()
        done += len(ids)
    print("%.0f" % (done / (time.monotonic() - t0)))


if __name__ == "__main__":
    main()
