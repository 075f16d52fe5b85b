#!/usr/bin/env bash
# The guard's instructions per HTTP call, a figure that does not move with the machine (one
# load-test run's CPU figure moves by several µs): cachegrind counts BenchmarkGuardHTTP's
# unguarded and guarded halves, CALLS calls each, without GC and asynchronous preemption, and
# this prints their difference per call, then the functions that make it. Run from the module
# root (make guard-instructions). Needs valgrind; it emulates a CPU without the SHA extensions,
# so the token's SHA-256 counts far more here than it costs on a real one.
set -euo pipefail
GO=${GO:-go}
CALLS=${CALLS:-30000}
TOP=${TOP:-40}
mkdir -p bin
"$GO" test -c -o bin/mcp.test ./mcp/
for half in unguarded guarded; do
	GOGC=off GODEBUG=asyncpreemptoff=1 valgrind --tool=cachegrind --cache-sim=no \
		--cachegrind-out-file="bin/guard.$half.cg" bin/mcp.test -test.run '^$' \
		-test.bench "BenchmarkGuardHTTP\$/^$half\$" -test.benchtime "${CALLS}x" >/dev/null 2>&1 &
done
wait
cg_diff bin/guard.unguarded.cg bin/guard.guarded.cg >bin/guard.diff.cg 2>/dev/null
cg_annotate --threshold=0 --auto=no bin/guard.diff.cg | awk -v n="$CALLS" -v top="$TOP" -v root="$PWD/" '
	/PROGRAM TOTALS/ { x = $1; gsub(",", "", x); printf "%d instructions per call added by the guard:\n", x / n; next }
	/^Ir +file:function/ { on = 1; next }
	on && /^-+$/ && shown { exit }
	on && match($0, /^ *-?[0-9,]+ +\(/) {
		x = $1; gsub(",", "", x); f = $NF
		sub(/.*\/src\//, "", f); sub(/.*\/pkg\/mod\//, "", f); sub(root, "", f)
		if (shown++ < top) printf "%8d  %s\n", x / n, f
	}'
