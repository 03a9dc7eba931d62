# Apache Pulsar standalone from the binary distribution that Maven Central serves.
# shellcheck shell=bash

PULSAR_DIR=$SVC_DIR/pulsar
PULSAR_LOG=$PULSAR_DIR/pulsar.log
PULSAR_PID=$PULSAR_DIR/pulsar.pid

pulsar_install() {
	java_ok
	mvn_resolve "$SVC_ROOT/infra/pulsar/pom.xml" "$PULSAR_DIR/dl"
	if [ -f "$PULSAR_DIR/dist/.stamp" ] && cmp -s "$PULSAR_DIR/dist/.stamp" "$PULSAR_DIR/dl/.stamp"; then
		return 0
	fi
	local tgz
	tgz=$(ls "$PULSAR_DIR"/dl/pulsar-server-distribution-*-bin.tar.gz 2>/dev/null | head -n1)
	[ -n "$tgz" ] || fail pulsar "" "no pulsar-server-distribution-*-bin.tar.gz in $PULSAR_DIR/dl"
	rm -rf "$PULSAR_DIR/dist"
	mkdir -p "$PULSAR_DIR/dist"
	tar -xzf "$tgz" -C "$PULSAR_DIR/dist" --strip-components=1 || fail pulsar "" "unpacking $tgz failed"
	rm -f "$tgz" # the copy in the Maven cache stays
	cp "$PULSAR_DIR/dl/.stamp" "$PULSAR_DIR/dist/.stamp"
}

pulsar_probe() {
	curl -sf "http://$SVC_HOST:$PULSAR_HTTP_PORT/admin/v2/namespaces/public" | grep 'public/default' >/dev/null &&
		"$SVC_PROBE" pulsar "pulsar://$SVC_HOST:$PULSAR_PORT"
}

pulsar_start() {
	if pid_alive "$PULSAR_PID"; then
		return 0
	fi
	# A first start killed before its bookie wrote its cookie leaves metadata that names a bookie
	# with no VERSION file, and every later start fails on it; such a data dir holds no messages.
	if [ -e "$PULSAR_DIR/data/metadata" ] && [ ! -f "$PULSAR_DIR/data/bookkeeper/current/VERSION" ]; then
		log "pulsar: $PULSAR_DIR/data was left by a start that did not finish; starting afresh"
		rm -rf "$PULSAR_DIR/data/metadata" "$PULSAR_DIR/data/bookkeeper"
	fi
	mkdir -p "$PULSAR_DIR/data" "$PULSAR_DIR/logs"
	{
		cat "$PULSAR_DIR/dist/conf/standalone.conf"
		printf '\n'
		sed -e "s#@PORT@#$PULSAR_PORT#" -e "s#@HTTP_PORT@#$PULSAR_HTTP_PORT#" \
			"$SVC_ROOT/infra/pulsar/standalone-overrides.conf"
	} >"$PULSAR_DIR/standalone.conf"
	port_free pulsar "$PULSAR_PORT" "$PULSAR_HTTP_PORT" || return 0
	rotate_log "$PULSAR_LOG"
	log "starting pulsar on $SVC_HOST:$PULSAR_PORT (admin $SVC_HOST:$PULSAR_HTTP_PORT)"
	(
		# The working dir matters: a data/standalone/zookeeper dir in it would switch to ZooKeeper mode.
		cd "$PULSAR_DIR" || exit 1
		export PULSAR_MEM="-Xms256m -Xmx1g -XX:MaxDirectMemorySize=512m"
		# Startup is CPU bound (hundreds of jars) and competes with the test build on 2 cores: the C1
		# compiler alone cuts a warm start from ~60 s to ~15 s under load. Peak throughput is lower,
		# which tests do not need; benchmarks can set SLUICE_PULSAR_JIT_OPTS= (empty) for full JIT.
		export PULSAR_EXTRA_OPTS=${SLUICE_PULSAR_JIT_OPTS--XX:TieredStopAtLevel=1}
		export PULSAR_LOG_DIR="$PULSAR_DIR/logs"
		export PULSAR_STANDALONE_CONF="$PULSAR_DIR/standalone.conf"
		exec setsid bash "$PULSAR_DIR/dist/bin/pulsar" standalone --no-functions-worker --no-stream-storage \
			--metadata-dir "$PULSAR_DIR/data/metadata" --bookkeeper-dir "$PULSAR_DIR/data/bookkeeper" \
			>>"$PULSAR_LOG" 2>&1 </dev/null
	) &
	echo $! >"$PULSAR_PID"
}

pulsar_wait() { wait_for pulsar "$PULSAR_LOG" 240 "$PULSAR_PID" pulsar_probe; }

pulsar_stop() { stop_pidfile pulsar "$PULSAR_PID"; }

pulsar_pid() { pid_alive "$PULSAR_PID" && head -n1 "$PULSAR_PID"; }

pulsar_env() {
	echo "PULSAR_URL=pulsar://$SVC_HOST:$PULSAR_PORT"
	echo "PULSAR_ADMIN_URL=http://$SVC_HOST:$PULSAR_HTTP_PORT"
}
