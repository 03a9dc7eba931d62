# Apache Iceberg REST catalog test server (JDBC catalog on SQLite) from Maven Central jars.
# shellcheck shell=bash

ICEREST_DIR=$SVC_DIR/iceberg-rest
ICEREST_LOG=$ICEREST_DIR/iceberg-rest.log
ICEREST_PID=$ICEREST_DIR/iceberg-rest.pid
ICEREST_SRC=$SVC_ROOT/infra/iceberg-rest/LoopbackRESTCatalogServer.java

iceberg_rest_install() {
	java_ok
	mvn_resolve "$SVC_ROOT/infra/iceberg-rest/pom.xml" "$ICEREST_DIR/lib"
	local sum
	sum=$(cat "$ICEREST_SRC" "$ICEREST_DIR/lib/.stamp" | sha256sum | cut -d' ' -f1)
	if [ "$(cat "$ICEREST_DIR/classes/.stamp" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
	rm -rf "$ICEREST_DIR/classes"
	mkdir -p "$ICEREST_DIR/classes"
	javac -nowarn -d "$ICEREST_DIR/classes" -cp "$ICEREST_DIR/lib/*" "$ICEREST_SRC" >"$ICEREST_DIR/javac.log" 2>&1 ||
		fail iceberg-rest "$ICEREST_DIR/javac.log" "compiling the launcher failed"
	echo "$sum" >"$ICEREST_DIR/classes/.stamp"
}

iceberg_rest_probe() {
	curl -sf "http://$SVC_HOST:$ICEBERG_REST_PORT/v1/config" | grep '"defaults"' >/dev/null &&
		curl -sf "http://$SVC_HOST:$ICEBERG_REST_PORT/v1/namespaces" | grep '"namespaces"' >/dev/null
}

iceberg_rest_start() {
	if pid_alive "$ICEREST_PID"; then
		return 0
	fi
	mkdir -p "$ICEREST_DIR/warehouse"
	port_free iceberg-rest "$ICEBERG_REST_PORT" || return 0
	rotate_log "$ICEREST_LOG"
	log "starting iceberg-rest on $SVC_HOST:$ICEBERG_REST_PORT"
	(
		cd "$ICEREST_DIR" || exit 1
		exec setsid java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
			-cp "$ICEREST_DIR/classes:$ICEREST_DIR/lib/*" org.apache.iceberg.rest.LoopbackRESTCatalogServer \
			"$SVC_HOST" "$ICEBERG_REST_PORT" "jdbc:sqlite:$ICEREST_DIR/catalog.db?busy_timeout=30000" "file://$ICEREST_DIR/warehouse" \
			>>"$ICEREST_LOG" 2>&1 </dev/null
	) &
	echo $! >"$ICEREST_PID"
}

iceberg_rest_wait() { wait_for iceberg-rest "$ICEREST_LOG" 60 "$ICEREST_PID" iceberg_rest_probe; }

iceberg_rest_stop() { stop_pidfile iceberg-rest "$ICEREST_PID"; }

iceberg_rest_pid() { pid_alive "$ICEREST_PID" && head -n1 "$ICEREST_PID"; }

iceberg_rest_env() {
	echo "ICEBERG_REST_URI=http://$SVC_HOST:$ICEBERG_REST_PORT"
}
