#!/usr/bin/env python3
"""Parapet's Mail Check side by side with checkdmarc (PyPI) on the same
fixture zones, served by one NSD on 127.0.0.153:53 (checkdmarc cannot ask
another port; run as root).

    bench/mailcheck/compare_checkdmarc.py [--domains 1000]

1. For every fixture domain in testdata/mail/, prints what each tool says
   about SPF (valid? DNS lookups, void lookups) and DMARC (valid? policy),
   and marks where they disagree.
2. Times both on N generated domains (`bulk.test`, each with MX, an SPF
   include chain and DMARC) and prints domains/second and the ratio.
3. The DNS cache: N council-style domains (`council.test`) sharing three
   SPF include trees, once with shared gateway MX hosts and once with an
   MX host of their own. Counts the queries NSD answered (nsd-control
   stats over a unix socket) and Parapet's own count (--stats) for
   Parapet without its per-run cache (--no-dns-cache, as before the
   cache), with it, and checkdmarc, with the time each took.

--binary PATH uses that parapet instead of building a release one.
Writes the result to bench/mailcheck/RESULTS.md (prepended).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NS_IP = "127.0.0.153"
os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"

FIXTURES = ["good.test", "weak.test", "broken.test", "lookups.test", "nomail.test",
            "badpark.test", "org.test", "sub.org.test", "tls.test", "sts.test", "sts2.test"]


def ensure_tools():
    if shutil.which("nsd") is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nsd"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["pkill", "-x", "nsd"])
    if shutil.which("checkdmarc") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "checkdmarc"], check=True)


def bulk_zone(n):
    lines = ["$TTL 300", "@ SOA ns.bulk.test. hostmaster.bulk.test. 1 3600 600 86400 300",
             "  NS ns.bulk.test.", "ns A 127.0.0.1", "mx A 192.0.2.50",
             '_spf TXT "v=spf1 ip4:192.0.2.0/24 include:_spf2.bulk.test -all"',
             '_spf2 TXT "v=spf1 ip6:2001:db8::/32 -all"']
    for i in range(n):
        d = f"d{i}"
        lines += [f"{d} MX 10 mx.bulk.test.",
                  f'{d} TXT "v=spf1 mx include:_spf.bulk.test -all"',
                  f'_dmarc.{d} TXT "v=DMARC1; p={"reject" if i % 2 else "none"}; rua=mailto:dmarc@bulk.test"']
    return "\n".join(lines) + "\n"


def council_zone(n):
    """n domains c<i> with two shared gateway MX hosts, and n domains o<i>
    with an MX host of their own; all with an SPF record naming three
    shared include trees of 4, 4 and 2 records (10 lookups, as
    spf.protection.outlook.com-, _spf.google.com- and notify-like trees
    add up to) and DMARC reporting to the NCSC."""
    spf = ('"v=spf1 include:spf.protection.council.test include:_spf.google.council.test '
           'include:spf.notify.council.test -all"')
    dmarc = '"v=DMARC1; p=reject; rua=mailto:dmarc-rua@dmarc.service.gov.uk"'
    lines = ["$TTL 300", "@ SOA ns.council.test. hostmaster.council.test. 1 3600 600 86400 300",
             "  NS ns.council.test.", "ns A 127.0.0.1",
             "mx1.gateway A 192.0.2.201", "mx2.gateway A 192.0.2.202",
             'spf.protection TXT "v=spf1 include:spfa.protection.council.test include:spfb.protection.council.test '
             'include:spfc.protection.council.test -all"',
             'spfa.protection TXT "v=spf1 ip4:192.0.2.0/26 ip4:198.51.100.0/26 -all"',
             'spfb.protection TXT "v=spf1 ip4:192.0.2.64/26 ip6:2001:db8:1::/48 -all"',
             'spfc.protection TXT "v=spf1 ip4:192.0.2.128/26 ip6:2001:db8:2::/48 -all"',
             '_spf.google TXT "v=spf1 include:_netblocks.google.council.test include:_netblocks2.google.council.test '
             'include:_netblocks3.google.council.test ~all"',
             '_netblocks.google TXT "v=spf1 ip4:203.0.113.0/26 ~all"',
             '_netblocks2.google TXT "v=spf1 ip6:2001:db8:3::/48 ~all"',
             '_netblocks3.google TXT "v=spf1 ip4:203.0.113.64/26 ~all"',
             'spf.notify TXT "v=spf1 include:_ses.notify.council.test -all"',
             '_ses.notify TXT "v=spf1 ip4:198.51.100.128/25 -all"']
    for i in range(n):
        lines += [f"c{i} MX 10 mx1.gateway.council.test.", f"c{i} MX 20 mx2.gateway.council.test.",
                  f"c{i} TXT {spf}", f"_dmarc.c{i} TXT {dmarc}",
                  f"o{i} MX 10 o{i}.mail.protection.council.test.",
                  f"o{i}.mail.protection A 192.0.2.{i % 250 + 1}",
                  f"o{i} TXT {spf}", f"_dmarc.o{i} TXT {dmarc}"]
    return "\n".join(lines) + "\n"


def nsd_queries(tmp):
    out = subprocess.run(["nsd-control", "-c", os.path.join(tmp, "nsd.conf"), "stats_noreset"],
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^num\.queries=(\d+)$", out, re.M).group(1))


def start_nsd(tmp, zones):
    conf = [f"server:\n  ip-address: {NS_IP}@53\n  port: 53\n  server-count: 1\n  username: \"\"\n"
            f"  zonesdir: \"{tmp}\"\n  database: \"\"\n  zonelistfile: \"{tmp}/zl\"\n  xfrdfile: \"{tmp}/xfrd\"\n"
            f"  pidfile: \"{tmp}/nsd.pid\"\n  logfile: \"{tmp}/nsd.log\"\n  verbosity: 1\n"
            "  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: yes\n"
            f"  control-interface: {tmp}/nsd.ctl\n"]
    for name, text in zones:
        with open(os.path.join(tmp, f"{name}.zone"), "w") as f:
            f.write(text)
        conf.append(f"zone:\n  name: \"{name}\"\n  zonefile: \"{name}.zone\"\n")
    with open(os.path.join(tmp, "nsd.conf"), "w") as f:
        f.write("".join(conf))
    p = subprocess.Popen(["nsd", "-d", "-c", os.path.join(tmp, "nsd.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if p.poll() is not None:
        sys.exit(f"nsd did not start on {NS_IP}:53 (needs root; see {tmp}/nsd.log)")
    return p


def parapet_facts(r):
    codes = [f["code"] for f in r["findings"]]
    msgs = {f["code"]: f["message"] for f in r["findings"]}
    lookups = None
    for c in ("spf.lookups", "spf.lookups_at_limit", "spf.too_many_lookups"):
        if c in msgs:
            m = re.search(r"(\d+) (?:of 10 )?DNS lookups", msgs[c])
            lookups = int(m.group(1)) if m else None
    void = None
    if "spf.too_many_void_lookups" in msgs:
        void = int(re.match(r"(\d+)", msgs["spf.too_many_void_lookups"]).group(1))
    elif "spf.void_lookup" in msgs:
        void = msgs["spf.void_lookup"].count(": ")
    elif lookups is not None:
        void = 0
    spf_err = any(c.startswith("spf.") and f["severity"] == "error" for c, f in zip(codes, r["findings"])
                  if c not in ("spf.all_softfail",))
    dmarc_valid = bool(r["records"]["dmarc"]) and not any(
        c in ("dmarc.missing", "dmarc.syntax", "dmarc.policy_missing", "dmarc.multiple_records") for c in codes)
    return {"spf_valid": bool(r["records"]["spf"]) and not any(
                c in ("spf.syntax", "spf.multiple_records", "spf.too_many_lookups", "spf.too_many_void_lookups",
                      "spf.loop", "spf.include_missing", "spf.redirect_missing", "spf.missing") for c in codes),
            "spf_lookups": lookups, "spf_void": void, "spf_errors": spf_err, "dmarc_valid": dmarc_valid}


def checkdmarc_facts(r):
    spf = r.get("spf", {})
    dmarc = r.get("dmarc", {})
    return {"spf_valid": bool(spf.get("valid")), "spf_lookups": spf.get("dns_lookups"),
            "spf_void": spf.get("void_dns_lookups"), "spf_error": spf.get("error"),
            "dmarc_valid": bool(dmarc.get("valid")), "dmarc_error": dmarc.get("error")}


def cache_runs(parapet, tmp, n):
    """Queries and time: Parapet without and with its cache, and checkdmarc,
    for the shared-MX and own-MX council domains."""
    rows = ["| domains | run | NSD queries | Parapet's count | per domain | time | vs no cache |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for prefix, what in (("c", "shared gateway MX"), ("o", "own MX host")):
        listfile = os.path.join(tmp, f"council-{prefix}.txt")
        with open(listfile, "w") as f:
            f.write("".join(f"{prefix}{i}.council.test\n" for i in range(n)))
        runs = [("Parapet --no-dns-cache", [parapet, "mailcheck", "--from", listfile, "--no-tls", "--format",
                                            "json", "--nameserver", NS_IP, "--stats", "--no-dns-cache"]),
                ("Parapet", [parapet, "mailcheck", "--from", listfile, "--no-tls", "--format", "json",
                             "--nameserver", NS_IP, "--stats"]),
                ("checkdmarc", ["checkdmarc", "--skip-tls", "-n", NS_IP, "-t", "2", listfile])]
        base = None
        for name, cmd in runs:
            before = nsd_queries(tmp)
            t0 = time.monotonic()
            p = subprocess.run(cmd, capture_output=True, text=True)
            took = time.monotonic() - t0
            asked = nsd_queries(tmp) - before
            m = re.search(r"^dns: .* (\d+) queries sent", p.stderr, re.M)
            own = m.group(1) if m else "-"
            base = base or asked
            rows.append(f"| {n} {what} | {name} | {asked} | {own} | {asked / n:.1f} | {took:.2f} s | "
                        f"{asked / base:.2f} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--binary")
    a = ap.parse_args()
    ensure_tools()
    if a.binary:
        parapet = os.path.abspath(a.binary)
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "--locked", "-p", "parapet"], cwd=ROOT, check=True)
        parapet = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release",
                               "parapet")
    tmp = tempfile.mkdtemp(prefix="parapet-cmp-")
    zones = []
    mail = os.path.join(ROOT, "testdata", "mail")
    for f in sorted(os.listdir(mail)):
        if f.endswith(".zone"):
            zones.append((f[:-5], open(os.path.join(mail, f)).read()))
    zones.append(("bulk.test", bulk_zone(a.domains)))
    zones.append(("council.test", council_zone(a.domains)))
    nsd = start_nsd(tmp, zones)
    try:
        out = subprocess.run([parapet, "mailcheck", *FIXTURES, "--no-tls", "--format", "json", "--nameserver", NS_IP],
                             capture_output=True, text=True).stdout
        ours = {r["domain"]: parapet_facts(r) for r in json.loads(out)}
        out = subprocess.run(["checkdmarc", "--skip-tls", "-n", NS_IP, "-t", "2", *FIXTURES],
                             capture_output=True, text=True).stdout
        theirs_raw = json.loads(out)
        theirs = {r["domain"]: checkdmarc_facts(r) for r in theirs_raw}
        rows = ["| domain | SPF valid P/C | lookups P/C | void P/C | DMARC valid P/C | checkdmarc error |",
                "| --- | --- | --- | --- | --- | --- |"]
        disagreements = 0
        for d in FIXTURES:
            p, c = ours.get(d, {}), theirs.get(d, {})
            cols = [("spf_valid", "spf_valid"), ("spf_lookups", "spf_lookups"), ("spf_void", "spf_void"),
                    ("dmarc_valid", "dmarc_valid")]
            cells = []
            for pk, ck in cols:
                pv, cv = p.get(pk), c.get(ck)
                mark = "" if pv == cv else " **≠**"
                disagreements += pv != cv
                cells.append(f"{pv} / {cv}{mark}")
            err = (c.get("spf_error") or c.get("dmarc_error") or "").replace("|", "/")[:90]
            rows.append(f"| {d} | " + " | ".join(cells) + f" | {err} |")
        table = "\n".join(rows)

        domains = [f"d{i}.bulk.test" for i in range(a.domains)]
        listfile = os.path.join(tmp, "domains.txt")
        with open(listfile, "w") as f:
            f.write("\n".join(domains) + "\n")
        t0 = time.monotonic()
        subprocess.run([parapet, "mailcheck", "--from", listfile, "--no-tls", "--format", "json",
                        "--nameserver", NS_IP], capture_output=True)
        tp = time.monotonic() - t0
        t0 = time.monotonic()
        subprocess.run(["checkdmarc", "--skip-tls", "-n", NS_IP, "-t", "2", listfile], capture_output=True)
        tc = time.monotonic() - t0
        cache_table = cache_runs(parapet, tmp, a.domains)
    finally:
        nsd.terminate()
        nsd.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    ver = subprocess.run([sys.executable, "-m", "pip", "show", "checkdmarc"], capture_output=True, text=True).stdout
    ver = next((l.split(":", 1)[1].strip() for l in ver.splitlines() if l.startswith("Version")), "?")
    report = (f"## {datetime.date.today().isoformat()}\n\ncheckdmarc {ver}; {os.cpu_count()} CPUs. "
              f"P = Parapet, C = checkdmarc. {disagreements} disagreements on {len(FIXTURES)} fixture domains.\n\n"
              f"{table}\n\n{a.domains} generated domains (MX, SPF with a 2-level include chain, DMARC): "
              f"Parapet {tp:.2f} s ({a.domains / tp:.0f} domains/s), checkdmarc {tc:.2f} s "
              f"({a.domains / tc:.1f} domains/s): **{tc / tp:.0f}×**.\n\n"
              f"DNS queries for {a.domains} council-style domains sharing three SPF include trees "
              f"(NSD's count from `nsd-control stats`; Parapet's own from `--stats`; `--no-tls`, "
              f"checkdmarc `--skip-tls`):\n\n{cache_table}\n")
    print(report)
    out = os.path.join(ROOT, "bench", "mailcheck", "RESULTS.md")
    head = "# Mail Check: Parapet vs checkdmarc\n\nProduced by `bench/mailcheck/compare_checkdmarc.py`; newest first.\n\n"
    old = open(out).read()[len(head):] if os.path.exists(out) and open(out).read().startswith(head) else ""
    with open(out, "w") as f:
        f.write(head + report + "\n" + old)


if __name__ == "__main__":
    main()
