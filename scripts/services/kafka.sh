# Apache Kafka (KRaft, single combined broker and controller) from Maven Central jars.
# shellcheck shell=bash

KAFKA_DIR=$SVC_DIR/kafka
KAFKA_LOG=$KAFKA_DIR/kafka.log
KAFKA_PID=$KAFKA_DIR/kafka.pid
# A fixed cluster id: the data dir is formatted once and reused across restarts.
KAFKA_CLUSTER_ID=c2x1aWNlLXRlc3Qta2Fma2E

kafka_install() {
	java_ok
	mvn_resolve "$SVC_ROOT/infra/kafka/pom.xml" "$KAFKA_DIR/lib"
	if command -v unzip >/dev/null; then
		unzip -l "$KAFKA_DIR"/lib/kafka_2.13-*.jar kafka/tools/StorageTool.class >/dev/null 2>&1 ||
			fail kafka "" "kafka.tools.StorageTool is missing from $KAFKA_DIR/lib/kafka_2.13-*.jar"
	fi
}

kafka_probe() { "$SVC_PROBE" kafka "$SVC_HOST:$KAFKA_PORT"; }

kafka_start() {
	if pid_alive "$KAFKA_PID"; then
		return 0
	fi
	mkdir -p "$KAFKA_DIR/data"
	sed -e "s#@DATA_DIR@#$KAFKA_DIR/data#" -e "s#@PORT@#$KAFKA_PORT#" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#" \
		"$SVC_ROOT/infra/kafka/server.properties" >"$KAFKA_DIR/server.properties"
	cp "$SVC_ROOT/infra/kafka/log4j2.properties" "$KAFKA_DIR/log4j2.properties"
	if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
		java -Xmx256m -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_DIR/lib/*" \
			kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$KAFKA_DIR/server.properties" \
			--ignore-formatted >"$KAFKA_DIR/format.log" 2>&1 ||
			fail kafka "$KAFKA_DIR/format.log" "formatting the KRaft log dir failed"
	fi
	port_free kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" || return 0
	rotate_log "$KAFKA_LOG"
	log "starting kafka on $SVC_HOST:$KAFKA_PORT"
	(
		cd "$KAFKA_DIR" || exit 1
		exec setsid java -Xms128m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
			-Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
			-cp "$KAFKA_DIR/lib/*" kafka.Kafka "$KAFKA_DIR/server.properties" >>"$KAFKA_LOG" 2>&1 </dev/null
	) &
	echo $! >"$KAFKA_PID"
}

kafka_wait() { wait_for kafka "$KAFKA_LOG" 120 "$KAFKA_PID" kafka_probe; }

kafka_stop() { stop_pidfile kafka "$KAFKA_PID"; }

kafka_pid() { pid_alive "$KAFKA_PID" && head -n1 "$KAFKA_PID"; }

kafka_env() { echo "KAFKA_BOOTSTRAP=$SVC_HOST:$KAFKA_PORT"; }
