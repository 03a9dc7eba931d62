# Turns `go test -bench ... ./internal/wasmhost/ ./internal/wasmhost/meter/` output into tables:
# records/s (millions) per guest, mode and batch size with metered/trusted ratios, warm-up and load
# times, the cost of a guest loop iteration per mode and the rewrite's cost per MB.
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
/^BenchmarkModeRatio\// {
	split($1, p, "/"); g = substr(p[2], 7); b = substr(p[3], 7); sub(/-[0-9]+$/, "", b)
	for (i = 2; i < NF; i++) { if ($(i+1) == "ratio") rr[g, b] = $i; if ($(i+1) == "metered_rec/cpu_s") rm[g, b] = $i / 1e6; if ($(i+1) == "trusted_rec/cpu_s") rt[g, b] = $i / 1e6 }
	if (!(g in rseen)) { rseen[g] = 1; rorder[++rn] = g }
}
/^BenchmarkRewrite\// {
	split($1, p, "/"); g = substr(p[2], 8); sub(/-[0-9]+$/, "", g)
	for (i = 2; i < NF; i++) { if ($(i+1) == "ms/MB") rwms[g] = $i; if ($(i+1) == "MB/s") rwmbs[g] = $i }
	if (!(g in rwseen)) { rwseen[g] = 1; rworder[++rwn] = g }
}
/^BenchmarkGuestLoop\// {
	split($1, p, "/"); m = substr(p[2], 6); sub(/-[0-9]+$/, "", m)
	for (i = 2; i < NF; i++) if ($(i+1) == "ns/iter") loop[m] = $i
}
END {
	split("1 64 1024", bs1, " ")
	if (n > 0) {
		printf "\nrecords/s through one stage, one instance, 100-byte JSON records (millions); ratio = metered (the default) / trusted\n"
		printf "%-30s %-8s %9s %9s %9s\n", "guest", "mode", "batch 1", "64", "1024"
		for (k = 1; k <= n; k++) {
			g = order[k]
			split("metered strict trusted", ms, " ")
			for (i = 1; i <= 3; i++) {
				printf "%-30s %-8s", (i == 1 ? g : ""), ms[i]
				for (j = 1; j <= 3; j++) { key = g SUBSEP ms[i] SUBSEP bs1[j]; if (key in v) printf " %9.3f", v[key]; else printf " %9s", "-" }
				printf "\n"
			}
			printf "%-30s %-8s", "", "ratio"
			for (j = 1; j <= 3; j++) {
				km = g SUBSEP "metered" SUBSEP bs1[j]; kt = g SUBSEP "trusted" SUBSEP bs1[j]
				if ((km in v) && (kt in v) && v[kt] > 0) printf " %9.2f", v[km] / v[kt]; else printf " %9s", "-"
			}
			printf "\n"
		}
	}
	if (pn > 0) {
		printf "\ntwo instances, large batches split across them (millions of records/s)\n"
		printf "%-30s %-8s %9s %9s\n", "guest", "mode", "1024", "4096"
		split("1024 4096", bs2, " ")
		for (k = 1; k <= pn; k++) {
			g = porder[k]
			split("metered strict trusted", ms, " ")
			for (i = 1; i <= 3; i++) {
				printf "%-30s %-8s", (i == 1 ? g : ""), ms[i]
				for (j = 1; j <= 2; j++) { key = g SUBSEP ms[i] SUBSEP bs2[j]; if (key in pv) printf " %9.3f", pv[key]; else printf " %9s", "-" }
				printf "\n"
			}
		}
	}
	if (rn > 0) {
		printf "\nmetered (the default) over trusted, in CPU time: medians of 9 alternating rounds, one instance (millions of records per CPU second)\n"
		printf "%-30s %-8s %9s %9s %9s\n", "guest", "", "batch 1", "64", "1024"
		for (k = 1; k <= rn; k++) {
			g = rorder[k]
			printf "%-30s %-8s", g, "metered"; for (j = 1; j <= 3; j++) printf " %9.3f", rm[g, bs1[j]]; printf "\n"
			printf "%-30s %-8s", "", "trusted"; for (j = 1; j <= 3; j++) printf " %9.3f", rt[g, bs1[j]]; printf "\n"
			printf "%-30s %-8s", "", "ratio"; for (j = 1; j <= 3; j++) printf " %9.2f", rr[g, bs1[j]]; printf "\n"
		}
	}
	if (wn > 0) {
		printf "\ninstance warm-up (instantiate, _initialize, tf_init), module compiled\n"
		for (k = 1; k <= wn; k++) printf "%-30s %10.0f µs\n", worder[k], w[worder[k]]
	}
	if (ln > 0) {
		printf "\nload and first stage of a module already in the cache directory (read, hash, compile from cache, probe, rewritten module from cache, one instance)\n"
		for (k = 1; k <= ln; k++) printf "%-30s %10.1f ms\n", lorder[k], ld[lorder[k]]
	}
	if (("strict" in loop) && ("trusted" in loop) && ("metered" in loop)) {
		printf "\nguest loop iteration (C, volatile counter): metered %.2f ns, strict %.2f ns, trusted %.2f ns\n", loop["metered"], loop["strict"], loop["trusted"]
	}
	if (rwn > 0) {
		printf "\nrewrite for metered mode at load (once per module and digest; the result is compiled and cached)\n"
		for (k = 1; k <= rwn; k++) printf "%-30s %8.1f ms per MB of module\n", rworder[k], rwms[rworder[k]]
	}
}
