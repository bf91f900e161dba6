"""How soon a training step shows up in the dashboard's live updates.

A child process trains a small MLP (784-256-10, batch 64, one torch thread) for ``--seconds``
with ``nl.watch(weights="full", grads="stats", activations="stats")`` and ``run.log`` at every
step, and writes the wall time at which each step was logged. The parent serves the runs
folder with the dashboard (``netlapse.ui.Dashboard``) and reads ``/api/events`` as a browser
does (server-sent events). For every ``update`` event it notes when it arrived, the newest
step it carries and the commit time it reports, then splits the delay of each step into:

- writer: from ``run.log`` of the step to the commit that publishes it (``commit.json`` time);
- dashboard: from that commit to the event reaching the client.

Each ``flush_every`` given is measured in the same invocation, one after the other.

    PYTHONPATH=. python benchmarks/live_latency.py [--seconds 20] [--flush 1.0 0.25]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import torch
import netlapse as nl
torch.set_num_threads(1)
torch.manual_seed(0)
path, seconds, flush = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
logged = []
with nl.Run(path, flush_every=flush) as run, nl.watch(model, run, optimizer=opt, weights="full",
                                                      grads="stats", activations="stats"):
    print("ready", flush=True)
    sys.stdin.readline()                      # the parent is listening
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        run.log(loss=loss.item())
        logged.append((run.step, time.time()))
        time.sleep(0.005)                      # a data loader's pause
json.dump(logged, open(path + ".logged.json", "w"))
"""


def listen(port: int, run: str, events: list, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"/api/events?run={run}", headers={"Host": "localhost"})
    resp = conn.getresponse()
    kind = None
    while not stop.is_set():
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "update":
            msg = json.loads(line[6:])
            events.append((time.time(), msg["last_step"], msg.get("updated")))
    conn.close()


def measure(root: Path, seconds: float, flush: float) -> dict:
    from netlapse.ui import Dashboard

    name = f"live-{flush}"
    path = root / name
    env = {**os.environ, "NETLAPSE_PROGRESS": "0"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(seconds), str(flush)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "ready"
    events: list = []
    stop = threading.Event()
    with Dashboard(root, port=0) as dash:
        t = threading.Thread(target=listen, args=(dash.port, name, events, stop), daemon=True)
        t.start()
        time.sleep(0.5)   # the event stream is open (its first poll ran)
        child.stdin.write("go\n")
        child.stdin.flush()
        child.wait()
        time.sleep(1.0)   # the close commit's event
        stop.set()
    logged = dict(json.load(open(str(path) + ".logged.json")))
    steps = sorted(logged)
    delays, writer, dash_side = [], [], []
    for step in steps:
        first = next(((at, last, upd) for at, last, upd in events if last >= step), None)
        if first is None:
            continue
        delays.append(first[0] - logged[step])
        if first[2] is not None:
            writer.append(first[2] - logged[step])
            dash_side.append(first[0] - first[2])
    gaps = [b[0] - a[0] for a, b in zip(events, events[1:])]

    def q(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")

    return {"flush_every": flush, "steps": len(steps), "events": len(events),
            "delay_median": statistics.median(delays), "delay_p90": q(delays, 0.9),
            "delay_max": max(delays), "writer_median": statistics.median(writer),
            "dashboard_median": statistics.median(dash_side), "dashboard_max": max(dash_side),
            "event_gap_median": statistics.median(gaps) if gaps else float("nan"),
            "event_gap_max": max(gaps) if gaps else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--flush", type=float, nargs="+", default=[1.0, 0.25])
    args = ap.parse_args()
    print("load:", os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        for flush in args.flush:
            r = measure(Path(tmp), args.seconds, flush)
            print(f"flush_every={r['flush_every']:<5} steps={r['steps']} events={r['events']}  "
                  f"step->event median {r['delay_median']:.2f} s, p90 {r['delay_p90']:.2f} s, max {r['delay_max']:.2f} s  "
                  f"(writer median {r['writer_median']:.2f} s; commit->event median {r['dashboard_median']:.2f} s, "
                  f"max {r['dashboard_max']:.2f} s)  event gap median {r['event_gap_median']:.2f} s, "
                  f"max {r['event_gap_max']:.2f} s", flush=True)
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
