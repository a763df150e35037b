#!/usr/bin/env python3
"""Cluster reads of a Magnum-compatible endpoint, one client for upstream Magnum and for ours.

The peers toolkit's bench_magnum.py measures cluster templates only; this is its counterpart for
the cluster reads issue 4 names, with the same method and output, so both land in one table:
  cluster-list  GET {url}/clusters
  cluster-show  GET {url}/clusters/<uuid of one seeded cluster>
It first creates a template and --seed clusters (the default quota allows 20 per project), waits
until every one is CREATE_COMPLETE, measures sequentially (1 thread) and concurrently (-c threads
sharing -n requests), with a new TCP connection per request and/or one per thread
(--connections), all on the same seeds, then deletes what it made. Standard library only; loopback targets only.

usage: bench_clusters.py --url URL/v1 [--token T] [--image I] [-n 200] [-c 4] [--seed 10]
                         [--connections new,keepalive] [--json FILE]
"""
import argparse
import http.client
import ipaddress
import json
import math
import socket
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:19511/v1")
    p.add_argument("-n", type=int, default=200, help="requests per operation and mode")
    p.add_argument("-c", "--concurrency", type=int, default=4)
    p.add_argument("--seed", type=int, default=10, help="clusters to create before measuring")
    p.add_argument("--modes", default="seq,conc")
    p.add_argument("--keepalive", action="store_true", help="same as --connections keepalive")
    p.add_argument("--connections", default="new",
                   help="comma list of new (a TCP connection per request) and keepalive (one per thread)")
    p.add_argument("--token", default="bench")
    p.add_argument("--microversion", default="latest")
    p.add_argument("--image", default="ubuntu-k8s")
    p.add_argument("--external-network", default="public")
    p.add_argument("--ready-timeout", type=float, default=180.0, help="seconds for the seeds to complete")
    p.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    p.add_argument("--json")
    return p.parse_args()


A = parse_args()
U = urlsplit(A.url.rstrip("/"))
HOST, PORT, BASE = U.hostname, U.port or 80, U.path
HDRS = {"Content-Type": "application/json", "Accept": "application/json",
        "OpenStack-API-Version": "container-infra " + A.microversion, "X-Auth-Token": A.token}
RUN = uuid.uuid4().hex[:8]


class Client:
    def __init__(self, keepalive=False):
        self.conn = None
        self.keepalive = keepalive

    def req(self, method, path, body=None):
        """-> (status, or 0 on a transport error; body bytes; milliseconds)"""
        data = json.dumps(body) if body is not None else None
        t = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, PORT, timeout=A.timeout)
            self.conn.request(method, BASE + path, body=data, headers=HDRS)
            r = self.conn.getresponse()
            out, st = r.read(), r.status
            if not self.keepalive or (r.getheader("Connection") or "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            st, out = 0, repr(e).encode()
        return st, out, (time.perf_counter() - t) * 1000.0

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def ok(self, method, path, body=None):
        st, out, _ = self.req(method, path, body)
        if not 200 <= st < 300:
            sys.exit("bench_clusters: %s %s -> %s %s" % (method, path, st, out[:400]))
        return json.loads(out) if out else None


def nearest_rank(sorted_ms, p):
    return sorted_ms[max(0, math.ceil(p / 100.0 * len(sorted_ms)) - 1)] if sorted_ms else float("nan")


def measure(op, mode, path, threads, keepalive):
    lat, errors, first = [], 0, []
    lock = threading.Lock()
    left = [A.n]

    def worker():
        nonlocal errors
        c = Client(keepalive)
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            st, body, ms = c.req("GET", path)
            with lock:
                lat.append(ms)
                if not 200 <= st < 300:
                    errors += 1
                    if not first:
                        first.append("%s %s" % (st, body[:300].decode(errors="replace")))
        c.close()

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.perf_counter() - t0
    s = sorted(lat)
    res = {"op": op, "mode": mode, "threads": threads, "n": len(s), "errors": errors,
           "p50_ms": nearest_rank(s, 50), "p90_ms": nearest_rank(s, 90), "p99_ms": nearest_rank(s, 99),
           "max_ms": s[-1] if s else float("nan"), "req_per_s": len(s) / wall if wall > 0 else 0.0,
           "wall_s": wall, "keepalive": keepalive}
    if first:
        res["first_error"] = first[0]
    return res


def seed(c):
    tmpl = c.ok("POST", "/clustertemplates", {
        "name": "bench-clusters-" + RUN, "coe": "kubernetes", "image_id": A.image,
        "external_network_id": A.external_network})["uuid"]
    made = []
    for i in range(A.seed):
        made.append(c.ok("POST", "/clusters", {
            "name": "bench-%s-%d" % (RUN, i), "cluster_template_id": tmpl,
            "master_count": 1, "node_count": 1})["uuid"])
    deadline = time.monotonic() + A.ready_timeout
    while True:
        # One show per seed: a list can fail on rows an earlier run left behind (upstream).
        status = {u: c.ok("GET", "/clusters/" + u)["status"] for u in made}
        if all(status.get(u) == "CREATE_COMPLETE" for u in made):
            return tmpl, made
        if any(s.endswith("FAILED") for s in status.values()) or time.monotonic() > deadline:
            sys.exit("bench_clusters: seeds did not complete: %s" % status)
        time.sleep(1)


def cleanup(c, tmpl, made):
    """Deletes what seed() made and waits until each cluster answers 404 (per cluster: upstream's
    list can fail while its no-op driver deletes); a delete that did not start is sent again."""
    left = set(made)
    for u in made:
        c.req("DELETE", "/clusters/" + u)
    deadline = time.monotonic() + A.ready_timeout
    while left and time.monotonic() < deadline:
        time.sleep(1)
        for u in sorted(left):
            st, body, _ = c.req("GET", "/clusters/" + u)
            if st == 404:
                left.discard(u)
            elif st == 200 and not json.loads(body).get("status", "").startswith("DELETE"):
                c.req("DELETE", "/clusters/" + u)
    if left:
        print("bench_clusters: %d clusters not gone after %.0f s" % (len(left), A.ready_timeout))
    c.req("DELETE", "/clustertemplates/" + tmpl)


def main():
    if not any(ipaddress.ip_address(i[4][0]).is_loopback
               for i in socket.getaddrinfo(HOST, PORT, proto=socket.IPPROTO_TCP)):
        sys.exit("bench_clusters: %s is not a loopback address" % HOST)
    c = Client()
    t0 = time.monotonic()
    tmpl, made = seed(c)
    conns = ["keepalive"] if A.keepalive else [x for x in A.connections.split(",") if x]
    print("target %s  seeded %d clusters in %.1f s  n=%d  threads=%d  connections=%s" % (
        A.url, len(made), time.monotonic() - t0, A.n, A.concurrency, ",".join(conns)))
    results = []
    try:
        for conn in conns:
            for mode in [m for m in A.modes.split(",") if m]:
                th = 1 if mode == "seq" else A.concurrency
                for op, path in (("cluster-list", "/clusters"), ("cluster-show", "/clusters/" + made[0])):
                    results.append(measure(op, mode, path, th, conn == "keepalive"))
    finally:
        cleanup(c, tmpl, made)
    print("%-14s %-5s %-9s %3s %5s %4s %9s %9s %9s %9s %8s" % (
        "operation", "mode", "conn", "thr", "n", "err", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s"))
    for r in results:
        print("%-14s %-5s %-9s %3d %5d %4d %9.2f %9.2f %9.2f %9.2f %8.1f" % (
            r["op"], r["mode"], "keepalive" if r["keepalive"] else "new", r["threads"], r["n"],
            r["errors"], r["p50_ms"], r["p90_ms"],
            r["p99_ms"], r["max_ms"], r["req_per_s"]))
        if "first_error" in r:
            print("  first error: " + r["first_error"])
    if A.json:
        with open(A.json, "w") as f:
            json.dump({"url": A.url, "results": results}, f, indent=1)
    return 1 if any(r["errors"] for r in results) else 0


sys.exit(main())
