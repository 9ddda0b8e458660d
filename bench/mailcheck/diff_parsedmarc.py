#!/usr/bin/env python3
"""Differential test of DMARC aggregate report parsing: Parapet against
parsedmarc, over every sample in testdata/dmarc/aggregate.

    bench/mailcheck/diff_parsedmarc.py            # table on stdout, exit 1 on a disagreement
    PARSEDMARC_PYTHON=/path/to/python bench/mailcheck/diff_parsedmarc.py

For each file both parsers give the messages per source IP (the sum of
`count` over the records of that IP). Parapet's come from the ignored test
`report::tests::dump_sample_counts` (cargo test -p parapet-mailcheck);
parsedmarc's from `parse_report_file(path, offline=True)` in the Python
that has parsedmarc (target/parsedmarc-venv, made with pip if missing, as
parse_reports.sh does). A file agrees when both give the same counts, or
both refuse it.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "testdata" / "dmarc" / "aggregate"

PY_SIDE = r"""
import json, sys, collections, logging
logging.disable(logging.CRITICAL)
import parsedmarc
out = {}
for path in sys.argv[1:]:
    name = path.rsplit("/", 1)[-1]
    try:
        r = parsedmarc.parse_report_file(path, offline=True)
    except Exception as e:
        out[name] = {"refused": f"{type(e).__name__}: {e}"[:160]}
        continue
    rep = r.get("report", r)
    counts = collections.Counter()
    for rec in rep.get("records", []):
        counts[rec["source"]["ip_address"]] += int(rec["count"])
    out[name] = {"counts": dict(counts), "kind": r.get("report_type")}
print(json.dumps(out))
"""


def parsedmarc_python():
    if os.environ.get("PARSEDMARC_PYTHON"):
        return os.environ["PARSEDMARC_PYTHON"]
    venv = ROOT / "target" / "parsedmarc-venv"
    if not (venv / "bin" / "parsedmarc").exists():
        print(f"installing parsedmarc into {venv} (pip install parsedmarc)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "parsedmarc"], check=True)
    return str(venv / "bin" / "python")


def parapet_counts():
    out = subprocess.run(
        ["cargo", "test", "-q", "-p", "parapet-mailcheck", "--lib", "--",
         "--ignored", "--exact", "report::tests::dump_sample_counts", "--nocapture"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    res = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if parts[0] == "COUNTS":
            res.setdefault(parts[1], {"counts": {}})["counts"][parts[2]] = int(parts[3])
        elif parts[0] == "REFUSED":
            res[parts[1]] = {"refused": parts[2]}
    return res


def main():
    files = sorted(p for p in SAMPLES.iterdir() if p.is_file())
    py = parsedmarc_python()
    version = subprocess.run(
        [py, "-c", "import parsedmarc; print(parsedmarc.__version__)"],
        capture_output=True, text=True,
    ).stdout.strip()
    pd = json.loads(subprocess.run(
        [py, "-c", PY_SIDE, *map(str, files)], capture_output=True, text=True, check=True,
    ).stdout)
    pp = parapet_counts()
    agree = 0
    print(f"parsedmarc {version}; {len(files)} samples in testdata/dmarc/aggregate\n")
    print("| file | Parapet | parsedmarc | |")
    print("| --- | --- | --- | --- |")
    for f in files:
        a, b = pp.get(f.name, {"refused": "no output"}), pd[f.name]

        def show(x):
            if "refused" in x:
                return "refused: " + x["refused"][:60]
            c = x["counts"]
            if len(c) > 3:
                return f"{len(c)} IPs, {sum(c.values())} messages"
            return ", ".join(f"{ip}: {n}" for ip, n in sorted(c.items()))

        same = ("refused" in a and "refused" in b) or a.get("counts") == b.get("counts")
        agree += same
        print(f"| {f.name} | {show(a)} | {show(b)} | {'=' if same else '**≠**'} |")
    print(f"\n{agree} of {len(files)} agree")
    return 0 if agree == len(files) else 1


if __name__ == "__main__":
    sys.exit(main())
