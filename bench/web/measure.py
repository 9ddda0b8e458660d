#!/usr/bin/env python3
"""Times dashboard pages over HTTP (bench/web/run): signs in as each role,
requests every page N times on one kept-alive connection after a warm-up,
and prints a Markdown table of p50 / p95 / max in milliseconds (the time
from sending the request to the last byte of the answer)."""

import argparse
import http.client
import sys
import time
import urllib.parse

PASSWORD = "bench-password-123"
USERS = [("supplier-admin", "bench-admin"), ("council", "bench-council")]
# (page, path): the query search is included when the route exists; the
# suffix search names a domain of the fill's heavy head (fill.rs)
PAGES = [
    ("overview", "/"),
    ("alerts", "/alerts"),
    ("query search", "/queries"),
    ("query search, suffix", "/queries?name=example0.org&match=suffix"),
]


def wait_up(host, port, seconds):
    """Waits for the dashboard (the first start migrates the store)."""
    end = time.time() + seconds
    while time.time() < end:
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", "/login")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    sys.exit(f"the dashboard at {host}:{port} did not answer within {seconds} s")


def cookie(resp, name):
    for k, v in resp.getheaders():
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";")[0].split("=", 1)[1]
    sys.exit(f"no {name} cookie")


def sign_in(host, port, user):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/login")
    r = c.getresponse()
    r.read()
    csrf = cookie(r, "parapet_login_csrf")
    body = urllib.parse.urlencode({"username": user, "password": PASSWORD, "csrf": csrf})
    c.request(
        "POST",
        "/login",
        body,
        {
            "Cookie": f"parapet_login_csrf={csrf}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    r = c.getresponse()
    r.read()
    if r.status != 303:
        return None
    return "parapet_session=" + cookie(r, "parapet_session")


def sign_in_retrying(host, port, user, seconds=300):
    """Signs in, retrying while the store is busy with the jobs a start
    runs (SQLite answers "database is locked" meanwhile)."""
    end = time.time() + seconds
    while time.time() < end:
        s = sign_in(host, port, user)
        if s:
            return s
        time.sleep(2)
    sys.exit(f"login as {user} failed for {seconds} s")


def pct(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100 * len(sorted_ms) + 0.5)) - 1)]


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--backend", required=True)
    a.add_argument("--addr", required=True)
    a.add_argument("--requests", type=int, default=200)
    a.add_argument("--rows", default="")
    a.add_argument("--wait", type=int, default=3600)
    args = a.parse_args()
    host, port = args.addr.rsplit(":", 1)
    port = int(port)
    t0 = time.time()
    wait_up(host, port, args.wait)
    print(f"\n{args.backend}: {args.rows.strip()}; dashboard up after {time.time() - t0:.0f} s")
    # first: the first request after start (or after the other role's),
    # before the warm-up; the overview computes its kept summaries then
    print("\n| store | page | role | requests | first ms | p50 ms | p95 ms | max ms | bytes |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    missing = []
    for role, user in USERS:
        session = sign_in_retrying(host, port, user)
        c = http.client.HTTPConnection(host, port, timeout=60)
        for page, path in PAGES:
            times, size, first = [], 0, None
            for i in range(args.requests + 3):
                s = time.perf_counter()
                c.request("GET", path, headers={"Cookie": session})
                r = c.getresponse()
                body = r.read()
                ms = (time.perf_counter() - s) * 1000
                if r.status == 404 and path == "/queries":
                    break
                if r.status != 200:
                    sys.exit(f"{path} as {role}: HTTP {r.status}: {body[:200]!r}")
                size = len(body)
                if first is None:
                    first = ms
                if i >= 3:  # warm-up
                    times.append(ms)
            if not times:
                missing.append(page)
                continue
            times.sort()
            print(
                f"| {args.backend} | {page} | {role} | {len(times)} | {first:.1f} | {pct(times, 50):.1f} | "
                f"{pct(times, 95):.1f} | {times[-1]:.1f} | {size} |"
            )
    for page in sorted(set(missing)):
        print(f"\n{page}: no such page on this build (404), not measured")


if __name__ == "__main__":
    main()
