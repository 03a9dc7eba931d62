#!/usr/bin/env bash
# Prints what ran against which service, from the lines internal/testenv appends to
# build/test-services.log, then moves that log aside so the next summary covers only newer runs.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

logf=${SLUICE_TEST_SERVICES_LOG:-$(dirname "$SVC_ENV_FILE")/test-services.log}
if [ ! -s "$logf" ]; then
	echo "services summary: no test used a service since the last summary ($logf is empty)"
	exit 0
fi
echo "services summary (from $logf):"
# Line format: time <TAB> key <TAB> package <TAB> test <TAB> result (pass|fail|skip|missing)
awk -F'\t' '
	{ k = $2; n[k]++; r[k, $5]++; if ($5 == "fail" || $5 == "missing") bad[k] = bad[k] " " $4 }
	END {
		printf "  %-20s %5s %5s %5s %5s %8s\n", "SERVICE", "TESTS", "PASS", "FAIL", "SKIP", "MISSING"
		for (k in n) printf "  %-20s %5d %5d %5d %5d %8d%s\n", k, n[k], r[k, "pass"], r[k, "fail"], r[k, "skip"], r[k, "missing"], (bad[k] != "" ? "   failed/missing:" bad[k] : "")
	}' "$logf" | { IFS= read -r header; echo "$header"; sort; }
mv "$logf" "$logf.last"
