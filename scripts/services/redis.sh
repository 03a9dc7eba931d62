# Redis from Debian packages, no persistence.
# shellcheck shell=bash

REDIS_DIR=$SVC_DIR/redis
REDIS_LOG=$REDIS_DIR/redis.log
REDIS_PID=$REDIS_DIR/redis.pid

redis_install() {
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server redis-tools
}

redis_probe() {
	local v
	v="probe-$$-$RANDOM"
	[ "$(redis-cli -h "$SVC_HOST" -p "$REDIS_PORT" SET sluice:probe "$v" EX 60 2>&1)" = OK ] &&
		[ "$(redis-cli -h "$SVC_HOST" -p "$REDIS_PORT" GET sluice:probe 2>&1)" = "$v" ]
}

redis_start() {
	if pid_alive "$REDIS_PID"; then
		return 0
	fi
	port_free redis "$REDIS_PORT" || return 0
	mkdir -p "$REDIS_DIR"
	log "starting redis on $SVC_HOST:$REDIS_PORT"
	redis-server --bind "$SVC_HOST" --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
		--pidfile "$REDIS_PID" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" >"$REDIS_DIR/start.log" 2>&1 ||
		fail redis "$REDIS_LOG" "redis-server failed to start"
}

redis_wait() { wait_for redis "$REDIS_LOG" 30 "" redis_probe; }

redis_stop() { stop_pidfile redis "$REDIS_PID"; }

redis_pid() { pid_alive "$REDIS_PID" && head -n1 "$REDIS_PID"; }

redis_env() { echo "REDIS_ADDR=$SVC_HOST:$REDIS_PORT"; }
