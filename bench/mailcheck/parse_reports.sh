#!/usr/bin/env bash
# Times Parapet's DMARC aggregate report parser against parsedmarc on the
# 2,286-record sample testdata/dmarc/aggregate/!large-example.com!…xml.
#
#   bench/mailcheck/parse_reports.sh            # 50 Parapet parses, 5 parsedmarc runs
#   ITERATIONS=200 PY_RUNS=3 bench/mailcheck/parse_reports.sh
#
# Parapet: the ignored test `report::tests::bench_parse_large_report`, built
# with `cargo test --release`, parses the file ITERATIONS times in one process
# (file already in memory, as an importer has it).
# parsedmarc: installed into target/parsedmarc-venv with pip if it is not
# there (PARSEDMARC=/path/to/parsedmarc to use another), run with --offline.
# Two parsedmarc figures are printed: the command line (what an operator
# runs: interpreter start-up and imports included) and one in-process
# parse_report_file(..., offline=True) call (the parse alone).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
FILE="$ROOT/testdata/dmarc/aggregate/!large-example.com!1711897200!1711983600.xml"
ITERATIONS=${ITERATIONS:-50}
PY_RUNS=${PY_RUNS:-5}

[ -f "$FILE" ] || { echo "missing $FILE" >&2; exit 1; }

now() { date +%s.%N; }

# --- Parapet -----------------------------------------------------------------
echo "building the release test binary (cargo test --release -p parapet-mailcheck)..." >&2
cargo test --release -p parapet-mailcheck --lib --no-run -q 2>&1 | grep -v '^\s*Executable' >&2 || true
out=$(PARSE_REPORTS_ITERATIONS=$ITERATIONS cargo test --release -q -p parapet-mailcheck --lib \
    -- --ignored --exact report::tests::bench_parse_large_report --nocapture 2>&1)
line=$(grep '^BENCH parapet' <<<"$out") || { echo "$out" >&2; echo "Parapet bench failed" >&2; exit 1; }
records=$(sed -E 's/.*records=([0-9]+).*/\1/' <<<"$line")
rs_total=$(sed -E 's/.*total_s=([0-9.]+).*/\1/' <<<"$line")
rs_each=$(sed -E 's/.*per_parse_s=([0-9.]+).*/\1/' <<<"$line")

# --- parsedmarc --------------------------------------------------------------
if [ -n "${PARSEDMARC:-}" ]; then
    PD=$PARSEDMARC
    PY=$(head -1 "$PD" | sed 's/^#!//')
elif command -v parsedmarc >/dev/null 2>&1; then
    PD=$(command -v parsedmarc)
    PY=$(head -1 "$PD" | sed 's/^#!//')
else
    VENV="$ROOT/target/parsedmarc-venv"
    if [ ! -x "$VENV/bin/parsedmarc" ]; then
        echo "installing parsedmarc into $VENV (pip install parsedmarc)..." >&2
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q parsedmarc >&2
    fi
    PD="$VENV/bin/parsedmarc"
    PY="$VENV/bin/python"
fi
pd_version=$("$PD" --version 2>&1 | tail -1)

# Warm the page cache and any first-run work, then time the command line.
"$PD" --offline "$FILE" >/dev/null 2>&1 || true
cli_best=
for _ in $(seq "$PY_RUNS"); do
    t0=$(now)
    "$PD" --offline "$FILE" >/dev/null
    t1=$(now)
    t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$cli_best" ] || [ "$(echo "$t < $cli_best" | bc -l)" = 1 ]; then cli_best=$t; fi
done

# The parse alone, in process (best of PY_RUNS after one warm-up).
py_line=$("$PY" - "$FILE" "$PY_RUNS" <<'PYEOF'
import sys, time
import parsedmarc
path, runs = sys.argv[1], int(sys.argv[2])
r = parsedmarc.parse_report_file(path, offline=True)
records = len(r["report"]["records"])
best = None
for _ in range(runs):
    t0 = time.perf_counter()
    parsedmarc.parse_report_file(path, offline=True)
    t = time.perf_counter() - t0
    best = t if best is None or t < best else best
print(f"records={records} best_s={best:.6f}")
PYEOF
)
py_records=$(sed -E 's/.*records=([0-9]+).*/\1/' <<<"$py_line")
py_best=$(sed -E 's/.*best_s=([0-9.]+).*/\1/' <<<"$py_line")

# --- report ------------------------------------------------------------------
printf 'file: %s (%s bytes)\n' "$(basename "$FILE")" "$(stat -c %s "$FILE")"
printf 'Parapet    : %s records; %d parses in %.4f s = %.3f ms per parse (release build)\n' \
    "$records" "$ITERATIONS" "$rs_total" "$(echo "$rs_each * 1000" | bc -l)"
printf 'parsedmarc : %s records; %s\n' "$py_records" "$pd_version"
printf '             command line (--offline, best of %d): %.3f s\n' "$PY_RUNS" "$cli_best"
printf '             parse_report_file(offline=True) in process (best of %d): %.3f s\n' \
    "$PY_RUNS" "$py_best"
printf 'ratio      : %.0fx faster than the parsedmarc command line, %.0fx faster than its in-process parse\n' \
    "$(echo "$cli_best / $rs_each" | bc -l)" "$(echo "$py_best / $rs_each" | bc -l)"
