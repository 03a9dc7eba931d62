# Turns `go test -bench 'BenchmarkStage|BenchmarkWarmup' ./internal/wasmhost/` output into tables:
# records/s (millions) per guest, mode and batch size, and the warm-up time of one instance.
/^BenchmarkStage\// {
	split($1, p, "/"); g = substr(p[2], 7); m = substr(p[3], 6); b = substr(p[4], 7); sub(/-[0-9]+$/, "", b)
	for (i = 2; i < NF; i++) if ($(i+1) == "rec/s") v[g, m, b] = $i / 1e6
	if (!(g in seen)) { seen[g] = 1; order[++n] = g }
}
/^BenchmarkStageParallel\// {
	split($1, p, "/"); g = substr(p[2], 7); m = substr(p[3], 6); b = substr(p[4], 7); sub(/-[0-9]+$/, "", b)
	for (i = 2; i < NF; i++) if ($(i+1) == "rec/s") pv[g, m, b] = $i / 1e6
	if (!(g in pseen)) { pseen[g] = 1; porder[++pn] = g }
}
/^BenchmarkWarmup\// {
	split($1, p, "/"); g = substr(p[2], 7); sub(/-[0-9]+$/, "", g)
	for (i = 2; i < NF; i++) if ($(i+1) == "µs/instance") w[g] = $i
	if (!(g in wseen)) { wseen[g] = 1; worder[++wn] = g }
}
/^BenchmarkLoad\// {
	split($1, p, "/"); g = substr(p[2], 7); sub(/-[0-9]+$/, "", g)
	for (i = 2; i < NF; i++) if ($(i+1) == "ns/op") ld[g] = $i / 1e6
	if (!(g in lseen)) { lseen[g] = 1; lorder[++ln] = g }
}
/^BenchmarkGuestLoop\// {
	split($1, p, "/"); m = substr(p[2], 6); sub(/-[0-9]+$/, "", m)
	for (i = 2; i < NF; i++) if ($(i+1) == "ns/iter") loop[m] = $i
}
END {
	if (n > 0) {
		printf "\nrecords/s through one stage, one instance, 100-byte JSON records (millions)\n"
		printf "%-30s %9s %9s %9s   %9s %9s %9s\n", "guest", "strict/1", "/64", "/1024", "trusted/1", "/64", "/1024"
		for (k = 1; k <= n; k++) {
			g = order[k]; printf "%-30s", g
			split("strict strict strict trusted trusted trusted", ms, " "); split("1 64 1024 1 64 1024", bs, " ")
			for (j = 1; j <= 6; j++) { if (j == 4) printf "  "; key = g SUBSEP ms[j] SUBSEP bs[j]; if (key in v) printf " %9.3f", v[key]; else printf " %9s", "-" }
			printf "\n"
		}
	}
	if (pn > 0) {
		printf "\ntwo instances, large batches split across them (millions of records/s)\n"
		printf "%-30s %11s %11s   %11s %11s\n", "guest", "strict/1024", "/4096", "trusted/1024", "/4096"
		for (k = 1; k <= pn; k++) {
			g = porder[k]; printf "%-30s", g
			split("strict strict trusted trusted", ms, " "); split("1024 4096 1024 4096", bs, " ")
			for (j = 1; j <= 4; j++) { if (j == 3) printf "  "; key = g SUBSEP ms[j] SUBSEP bs[j]; if (key in pv) printf " %11.3f", pv[key]; else printf " %11s", "-" }
			printf "\n"
		}
	}
	if (wn > 0) {
		printf "\ninstance warm-up (instantiate, _initialize, tf_init), module compiled\n"
		for (k = 1; k <= wn; k++) printf "%-30s %10.0f µs\n", worder[k], w[worder[k]]
	}
	if (ln > 0) {
		printf "\nload of a module already in the cache directory (read, hash, compile from cache, probe)\n"
		for (k = 1; k <= ln; k++) printf "%-30s %10.1f ms\n", lorder[k], ld[lorder[k]]
	}
	if (("strict" in loop) && ("trusted" in loop)) {
		printf "\nguest loop iteration (C, volatile counter): strict %.2f ns, trusted %.2f ns (%.0fx)\n", loop["strict"], loop["trusted"], loop["strict"] / loop["trusted"]
	}
}
