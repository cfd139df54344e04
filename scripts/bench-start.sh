#!/usr/bin/env bash
# Start-up cost, side by side in one run (issue 39, "Start-up"): `/bin/true`, `cat </dev/null`,
# `breach-audit --version` and one lookup per process (one password, and one SHA-1 with --hashes)
# against a small index built here. Each command runs RUNS times (default 50), the commands
# alternated round by round (their order rotated each round, one warm-up round not counted), each
# run timed from spawn to exit with perf_counter_ns; medians in ms. The goal: --version and a
# one-hash lookup within 1 ms of /bin/true and of cat.
#
#   BIN=target/release/breach-audit bash scripts/bench-start.sh [OUT.md]
#
# Writes a markdown section to OUT.md (standard output without it); the goal lines go to
# standard error. Needs python3. Work files in a temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/breach-audit}
RUNS=${RUNS:-50}
LINES=${LINES:-100000}
OUT=${1:-}
[ -x "$BIN" ] || cargo build --release -q
BIN=$(realpath "$BIN")
W=$(mktemp -d /tmp/ba-start-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

# A small sorted SHA-1 dump (LINES hashes, "password" among them) and its index.
python3 - "$LINES" > "$W/dump.txt" <<'EOF'
import hashlib, sys
n = int(sys.argv[1])
pws = [b"password"] + [b"start-bench-%d" % i for i in range(n - 1)]
rows = sorted(hashlib.sha1(p).hexdigest().upper() for p in pws)
sys.stdout.write("".join("%s:%d\n" % (h, 1 + i % 97) for i, h in enumerate(rows)))
EOF
"$BIN" build -q --index "$W/idx" --hibp "$W/dump.txt"
printf 'password\n' > "$W/password.txt"
printf '%s\n' "$(printf password | sha1sum | cut -c1-40)" > "$W/hash.txt"
# The lookups must answer (a count above 0: exit 1), or the timings mean nothing.
for f in password hash; do
  flag=; [ $f = hash ] && flag=--hashes
  got=$("$BIN" lookup --index "$W/idx" $flag < "$W/$f.txt" || true)
  [ "${got:-0}" != 0 ] || { echo "bench-start: lookup of $f.txt answered '$got'" >&2; exit 2; }
done

python3 - "$RUNS" "$BIN" "$W" "$OUT" <<'EOF'
import os, statistics, subprocess, sys, time
runs, bin_, w, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
idx = os.path.join(w, "idx")
cmds = [
    ("/bin/true", ["/bin/true"], "/dev/null"),
    ("cat </dev/null", ["cat"], "/dev/null"),
    ("breach-audit --version", [bin_, "--version"], "/dev/null"),
    ("breach-audit lookup (one password)", [bin_, "lookup", "--index", idx], os.path.join(w, "password.txt")),
    ("breach-audit lookup --hashes (one SHA-1)", [bin_, "lookup", "--index", idx, "--hashes"], os.path.join(w, "hash.txt")),
]
times = {name: [] for name, _, _ in cmds}
for r in range(runs + 1):
    k = r % len(cmds)
    for name, argv, stdin in cmds[k:] + cmds[:k]:
        with open(stdin, "rb") as f:
            t0 = time.perf_counter_ns()
            p = subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL)
            t1 = time.perf_counter_ns()
        if p.returncode not in (0, 1):
            sys.exit(f"bench-start: {name} exited {p.returncode}")
        if r > 0:
            times[name].append((t1 - t0) / 1e6)
med = {n: statistics.median(t) for n, t in times.items()}
lo = {n: min(t) for n, t in times.items()}
rows = [
    "## Start-up",
    "",
    f"Each command spawned {runs} times from Python (`subprocess.run`, spawn to exit), the commands "
    "alternated round by round; a one-hash lookup reads one line on standard input from an index "
    f"of {os.environ.get('LINES', '100000')} SHA-1 hashes. Reproduce: `scripts/bench-start.sh`.",
    "",
    "| command | median ms | min ms | median − /bin/true ms |",
    "|---|---:|---:|---:|",
]
for n in times:
    rows.append(f"| `{n}` | {med[n]:.3f} | {lo[n]:.3f} | {med[n] - med['/bin/true']:+.3f} |")
rows.append("")
goals = []
for n in list(times)[2:]:
    for base in ("/bin/true", "cat </dev/null"):
        ok = med[n] - med[base] <= 1.0
        goals.append(f"goal: {n.removeprefix('breach-audit ')} within 1 ms of {base}: "
                     f"{'met' if ok else 'not met'} ({med[n]:.3f} ms vs {med[base]:.3f} ms)")
rows += ["Goal: within 1 ms of `/bin/true` and of `cat`:", ""] + [f"- {g}" for g in goals] + [""]
text = "\n".join(rows) + "\n"
if out:
    with open(out, "w") as f:
        f.write(text)
else:
    print(text)
for g in goals:
    print(g, file=sys.stderr)
EOF
