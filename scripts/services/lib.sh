# Shared helpers for the test-service scripts. Sourced, never run.
# shellcheck shell=bash

SVC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SVC_DIR=${SLUICE_SERVICES_DIR:-$SVC_ROOT/build/services}
# Downloads are shared by every clone on the machine, so a fresh clone (CI) starts warm.
SVC_CACHE=${SLUICE_SERVICES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
SVC_M2=$SVC_CACHE/m2
SVC_ENV_FILE=${SLUICE_SERVICES_ENV:-$SVC_ROOT/build/services.env}
SVC_HOST=127.0.0.1

KAFKA_PORT=19092
KAFKA_CONTROLLER_PORT=19093
PULSAR_PORT=16650
PULSAR_HTTP_PORT=18080
PG_PORT=15432
REDIS_PORT=16379
ICEBERG_REST_PORT=18181
SCHEMA_REGISTRY_PORT=18081
SCHEMA_REGISTRY_MGMT_PORT=18082

log() { printf '[services] %s\n' "$*" >&2; }

# fail NAME LOGFILE MESSAGE: prints the error and the tail of the service's log, then exits 1.
fail() {
	local name=$1 logfile=$2
	shift 2
	printf '\n[services] ERROR: %s: %s\n' "$name" "$*" >&2
	if [ -n "$logfile" ] && [ -f "$logfile" ]; then
		if grep -aqE 'ERROR|FATAL|Caused by' "$logfile"; then
			printf '[services] first error lines of %s:\n' "$logfile" >&2
			grep -aE 'ERROR|FATAL|Caused by' "$logfile" | head -n 8 | cut -c1-300 >&2
		fi
		printf '[services] last 40 lines of %s:\n' "$logfile" >&2
		tail -n 40 "$logfile" | cut -c1-400 >&2
	fi
	exit 1
}

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
	[ -s "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null
}

# stop_pidfile NAME PIDFILE: SIGTERM, up to 30 s grace, then SIGKILL; removes the pid file.
stop_pidfile() {
	local name=$1 pidfile=$2 pid i
	if ! pid_alive "$pidfile"; then
		rm -f "$pidfile"
		return 0
	fi
	pid=$(head -n1 "$pidfile")
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name did not stop in 30 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

# port_free NAME PORT...: true when no process listens on the ports. Otherwise it records the holder
# in $SVC_DIR/NAME.external and returns 1: the caller skips its start, and wait_for then accepts the
# holder only if it answers the service's own round trip (e.g. the same services started from
# another checkout of the repository, which use the same fixed ports).
port_free() {
	local name=$1 port holder
	shift
	rm -f "$SVC_DIR/$name.external"
	command -v ss >/dev/null || return 0
	for port in "$@"; do
		holder=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n1)
		if [ -n "$holder" ]; then
			echo "port $port: $holder" >"$SVC_DIR/$name.external"
			log "$name: port $port is already in use; using that server if it answers as $name"
			return 1
		fi
	done
}

# external_pid NAME: pid of the process that holds NAME's port when it was not started here.
external_pid() {
	[ -s "$SVC_DIR/$1.external" ] && sed -n 's/.*pid=\([0-9]*\).*/\1/p' "$SVC_DIR/$1.external" | head -n1
}

# rotate_log FILE: keeps the previous run's log as FILE.prev.
rotate_log() {
	if [ -f "$1" ]; then
		mv -f "$1" "$1.prev"
	fi
}

# rss_mb PID: resident memory of PID and its direct children, in MiB.
rss_mb() {
	local pid=$1 kb
	kb=$( { ps -o rss= -p "$pid"; ps -o rss= --ppid "$pid"; } 2>/dev/null | awk '{s+=$1} END {print s+0}')
	echo $((kb / 1024))
}

# wait_for NAME LOGFILE TIMEOUT_S PIDFILE CMD...: runs CMD every second until it succeeds. Fails with
# the log tail when TIMEOUT_S passes or when the process in PIDFILE (if given) dies. While it waits it
# says which service, where and for how long: on a terminal one line redrawn every second, otherwise
# a line every SVC_WAIT_EVERY seconds (default 5).
wait_for() {
	local name=$1 logfile=$2 timeout=$3 pidfile=$4 start out external="" where waited said=-1 tty=""
	shift 4
	if [ -s "$SVC_DIR/$name.external" ]; then
		external=$(cat "$SVC_DIR/$name.external")
		pidfile="" timeout=30 logfile=""
	fi
	where=$(svc_where "$name")
	[ -t 2 ] && tty=1
	start=$(date +%s)
	while true; do
		waited=$(($(date +%s) - start))
		if out=$("$@" 2>&1); then
			wait_said "$tty" "$said" "$name$where answered after ${waited} s"
			[ -z "$external" ] || log "$name: answering on the port held by a server started elsewhere ($external)"
			return 0
		fi
		if [ -n "$tty" ]; then
			printf '\r\033[K[services] waiting for %s%s (%d s)...' "$name" "$where" "$waited" >&2
			said=$waited
		elif [ "$said" -lt 0 ] || [ $((waited - said)) -ge "${SVC_WAIT_EVERY:-5}" ]; then
			log "waiting for $name$where (${waited} s)..."
			said=$waited
		fi
		if [ -n "$pidfile" ] && ! pid_alive "$pidfile"; then
			wait_said "$tty" "$said" ""
			fail "$name" "$logfile" "the process exited before it answered (last probe: ${out:0:300})"
		fi
		if [ "$waited" -ge "$timeout" ]; then
			wait_said "$tty" "$said" ""
			if [ -n "$external" ]; then
				fail "$name" "" "its $external, and that server does not answer as $name (last probe: ${out:0:300})"
			fi
			fail "$name" "$logfile" "no answer$where after ${timeout}s (last probe: ${out:0:300})"
		fi
		sleep 1
	done
}

# svc_where NAME: " on ADDRESS" for the services whose port this file knows, else "".
svc_where() {
	local port=""
	case $1 in
	kafka) port=$KAFKA_PORT ;;
	pulsar) port=$PULSAR_PORT ;;
	postgres) port=$PG_PORT ;;
	redis) port=$REDIS_PORT ;;
	iceberg-rest) port=$ICEBERG_REST_PORT ;;
	schema-registry) port=$SCHEMA_REGISTRY_PORT ;;
	esac
	[ -z "$port" ] || printf ' on %s:%s' "$SVC_HOST" "$port"
}

# wait_said TTY SAID MESSAGE: ends wait_for's waiting line (on a terminal, the line being redrawn)
# with MESSAGE, when it printed one; a service that answered at once says nothing.
wait_said() {
	local tty=$1 said=$2 msg=$3
	[ "$said" -ge 0 ] || return 0
	if [ -n "$tty" ]; then
		printf '\r\033[K' >&2
	fi
	[ -z "$msg" ] || log "$msg"
}

# mvn_resolve POM OUTDIR [GOAL_ARGS...]: copies the runtime dependencies of POM into OUTDIR unless
# OUTDIR already holds the result for this exact POM (a stamp with the POM's checksum).
mvn_resolve() {
	local pom=$1 out=$2 sum
	shift 2
	sum=$(sha256sum "$pom" | cut -d' ' -f1)
	if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$sum" ]; then
		return 0
	fi
	command -v mvn >/dev/null || apt_install maven
	rm -rf "$out"
	mkdir -p "$out" "$SVC_M2"
	log "resolving $(basename "$(dirname "$pom")") jars with Maven (first run only)"
	if ! mvn -B -q -Dmaven.repo.local="$SVC_M2" -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$out" "$@" >"$out.mvn.log" 2>&1; then
		fail maven "$out.mvn.log" "dependency resolution of $pom failed"
	fi
	echo "$sum" >"$out/.stamp"
}

# apt_install PKG...: installs Debian packages, running apt-get update first when the lists are empty
# or the install fails with them.
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	log "installing Debian packages: $*"
	if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
		apt-get -o DPkg::Lock::Timeout=300 update -q >"$SVC_DIR/apt.log" 2>&1 || true
	fi
	if ! apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@" >>"$SVC_DIR/apt.log" 2>&1; then
		apt-get -o DPkg::Lock::Timeout=300 update -q >>"$SVC_DIR/apt.log" 2>&1 || true
		apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@" >>"$SVC_DIR/apt.log" 2>&1 ||
			fail apt "$SVC_DIR/apt.log" "apt-get install $* failed"
	fi
}

# java_ok: installs a Java 17 runtime from Debian when none is on PATH.
java_ok() {
	command -v java >/dev/null || apt_install openjdk-17-jdk-headless
}

# build_probe: builds (incrementally) the Go round-trip prober and sets SVC_PROBE to its path.
build_probe() {
	SVC_PROBE=$SVC_DIR/bin/svcprobe
	mkdir -p "$SVC_DIR/bin"
	command -v go >/dev/null || fail svcprobe "" "go is not on PATH"
	(cd "$SVC_ROOT" && go build -o "$SVC_PROBE" ./internal/testenv/cmd/svcprobe) >"$SVC_DIR/bin/build.log" 2>&1 ||
		fail svcprobe "$SVC_DIR/bin/build.log" "building the probe failed"
}

# venv_install NAME VENV REQUIREMENTS: (re)creates the virtual environment VENV with the packages of
# REQUIREMENTS unless it already holds exactly them (a stamp of the file's hash), logging to the
# venv's directory. Downloads go through the pip cache under $SVC_CACHE.
venv_install() {
	local name=$1 venv=$2 req=$3 dir sum py
	dir=$(dirname "$venv")
	sum=$(sha256sum "$req" | cut -d' ' -f1)
	if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	py=${PYTHON:-python3}
	command -v "$py" >/dev/null || apt_install python3 python3-venv
	rm -rf "$venv"
	mkdir -p "$dir"
	if ! "$py" -m venv "$venv" >"$dir/venv.log" 2>&1; then
		apt_install python3-venv
		"$py" -m venv "$venv" >"$dir/venv.log" 2>&1 || fail "$name" "$dir/venv.log" "python3 -m venv failed"
	fi
	log "installing $name into $venv"
	PIP_CACHE_DIR=$SVC_CACHE/pip "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" \
		>"$dir/pip.log" 2>&1 || fail "$name" "$dir/pip.log" "pip install failed"
	echo "$sum" >"$venv/.stamp"
}
