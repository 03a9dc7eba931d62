#!/usr/bin/env bash
# Installs, starts, stops and reports the real servers the integration tests use.
#   services.sh up [NAME...]      install what is missing, start, wait for a real round trip, write build/services.env
#   services.sh down [NAME...]    stop them
#   services.sh status [NAME...]  what runs, its address and resident memory
# NAME is one of: kafka pulsar postgres redis pyiceberg iceberg-rest schema-registry schemaclient (default: all, or $SLUICE_SERVICES).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for f in kafka pulsar postgres redis pyiceberg iceberg-rest schema-registry schemaclient; do
	. "$(dirname "${BASH_SOURCE[0]}")/$f.sh"
done

ALL="postgres redis kafka pulsar iceberg-rest schema-registry pyiceberg schemaclient"

fn() { echo "${1//-/_}_$2"; } # fn iceberg-rest start -> iceberg_rest_start

addr_of() {
	case $1 in
	kafka) echo "$SVC_HOST:$KAFKA_PORT" ;;
	pulsar) echo "pulsar://$SVC_HOST:$PULSAR_PORT http://$SVC_HOST:$PULSAR_HTTP_PORT" ;;
	postgres) echo "$SVC_HOST:$PG_PORT" ;;
	redis) echo "$SVC_HOST:$REDIS_PORT" ;;
	iceberg-rest) echo "http://$SVC_HOST:$ICEBERG_REST_PORT" ;;
	schema-registry) echo "$SR_URL" ;;
	pyiceberg) echo "$PYI_VENV/bin/python" ;;
	schemaclient) echo "$SCL_VENV/bin/python" ;;
	esac
}

cmd_up() {
	local names=("$@") name failed=() ok=() t0 probe_pid
	t0=$(date +%s)
	mkdir -p "$SVC_DIR" "$(dirname "$SVC_ENV_FILE")"
	exec 9>"$SVC_DIR/.lock"
	flock 9
	# The Go prober (franz-go, pulsar-client-go) builds while the downloads run.
	SVC_PROBE=$SVC_DIR/bin/svcprobe
	(build_probe) 9>&- &
	probe_pid=$!
	# Install and start each service; JVMs boot while the next one downloads.
	for name in "${names[@]}"; do
		# 9>&-: the servers must not inherit (and so hold) the lock.
		if ! ("$(fn "$name" install)" && "$(fn "$name" start)") 9>&-; then
			failed+=("$name")
		fi
	done
	if ! wait "$probe_pid"; then
		failed+=(svcprobe)
	fi
	for name in "${names[@]}"; do
		case " ${failed[*]-} " in *" $name "* | *" svcprobe "*) continue ;; esac
		if ("$(fn "$name" wait)") 9>&-; then
			ok+=("$name")
			log "$name is up ($(addr_of "$name"))"
		else
			failed+=("$name")
		fi
	done
	write_env "${ok[@]-}"
	log "services up in $(($(date +%s) - t0))s: ${ok[*]-none}; env in $SVC_ENV_FILE"
	if [ ${#failed[@]} -gt 0 ]; then
		log "FAILED: ${failed[*]}"
		return 1
	fi
}

# write_env NAME...: rewrites the env file with the addresses of every service that answers now,
# so a partial `up` of some services keeps the lines of the others.
write_env() {
	local name tmp
	tmp=$(mktemp "$SVC_ENV_FILE.XXXXXX")
	{
		echo "# Written by scripts/services/services.sh up at $(date -u +%Y-%m-%dT%H:%M:%SZ); do not edit."
		echo "SLUICE_SERVICES_DIR=$SVC_DIR"
		for name in $ALL; do
			if [[ " $* " == *" $name "* ]] || { [ -n "${SVC_PROBE:-}" ] && [ -x "$SVC_PROBE" ] && "$(fn "$name" probe)" >/dev/null 2>&1; }; then
				"$(fn "$name" env)"
			fi
		done
	} >"$tmp"
	mv "$tmp" "$SVC_ENV_FILE"
}

cmd_down() {
	local name
	mkdir -p "$SVC_DIR"
	exec 9>"$SVC_DIR/.lock"
	flock 9
	for name in "$@"; do
		if [ -s "$SVC_DIR/$name.external" ]; then
			log "$name was started outside this checkout ($(cat "$SVC_DIR/$name.external")); not stopping it"
			rm -f "$SVC_DIR/$name.external"
			continue
		fi
		"$(fn "$name" stop)" || log "stopping $name failed"
	done
	if [ "$*" = "$ALL" ]; then
		rm -f "$SVC_ENV_FILE"
	elif [ -f "$SVC_ENV_FILE" ]; then
		SVC_PROBE=$SVC_DIR/bin/svcprobe
		write_env # keeps the lines of the services still up
	fi
}

cmd_status() {
	local name pid state rss ext total=0
	SVC_PROBE=$SVC_DIR/bin/svcprobe
	printf '%-15s %-9s %-8s %-8s %s\n' SERVICE STATE PID RSS_MB ADDRESS
	for name in "$@"; do
		pid=$("$(fn "$name" pid)" 2>/dev/null || true)
		ext=""
		if [ -z "$pid" ] && [ -s "$SVC_DIR/$name.external" ]; then
			pid=$(external_pid "$name" || true)
			ext=1
		fi
		rss=-
		if [ -x "$SVC_PROBE" ] && "$(fn "$name" probe)" >/dev/null 2>&1; then
			state=up
			[ -z "$ext" ] || state=external
		elif [ -n "$pid" ]; then
			state=starting
		else
			state=down
		fi
		if [ -n "$pid" ]; then
			rss=$(rss_mb "$pid")
			total=$((total + rss))
		elif [ "$name" = pyiceberg ] || [ "$name" = schemaclient ]; then
			pid="(none)"
		fi
		printf '%-15s %-9s %-8s %-8s %s\n' "$name" "$state" "${pid:--}" "$rss" "$(addr_of "$name")"
	done
	printf '%-15s %-9s %-8s %-8s\n' total "" "" "$total"
	[ -f "$SVC_ENV_FILE" ] && echo "env file: $SVC_ENV_FILE" || echo "env file: none (run make services)"
	echo "(external: answers on its port but was started outside this checkout; down leaves it running)"
}

main() {
	local cmd=${1:-}
	shift || true
	local names=("$@")
	if [ ${#names[@]} -eq 0 ]; then
		read -r -a names <<<"${SLUICE_SERVICES:-$ALL}"
	fi
	for n in "${names[@]}"; do
		case " $ALL " in *" $n "*) ;; *) echo "unknown service: $n (known: $ALL)" >&2; exit 2 ;; esac
	done
	case $cmd in
	up) cmd_up "${names[@]}" ;;
	down) cmd_down "${names[@]}" ;;
	status) cmd_status "${names[@]}" ;;
	*) echo "usage: $0 up|down|status [NAME...]" >&2; exit 2 ;;
	esac
}

main "$@"
