# Confluent-compatible schema registry: Apicurio Registry 3 (its `ccompat` v7 API), from the runnable
# distribution that Maven Central serves. In-memory storage: every start is an empty registry.
# shellcheck shell=bash

SR_DIR=$SVC_DIR/schema-registry
SR_LOG=$SR_DIR/schema-registry.log
SR_PID=$SR_DIR/schema-registry.pid
# The Confluent Schema Registry API root (GET $SR_URL/subjects, POST $SR_URL/subjects/X/versions, ...).
SR_URL=http://$SVC_HOST:$SCHEMA_REGISTRY_PORT/apis/ccompat/v7

schema_registry_install() {
	schema_registry_java >/dev/null
	mvn_resolve "$SVC_ROOT/infra/schema-registry/pom.xml" "$SR_DIR/dl"
	if [ -f "$SR_DIR/dist/.stamp" ] && cmp -s "$SR_DIR/dist/.stamp" "$SR_DIR/dl/.stamp"; then
		return 0
	fi
	local tgz
	tgz=$(ls "$SR_DIR"/dl/apicurio-registry-app-*-all.tar.gz 2>/dev/null | head -n1)
	[ -n "$tgz" ] || fail schema-registry "" "no apicurio-registry-app-*-all.tar.gz in $SR_DIR/dl"
	rm -rf "$SR_DIR/dist"
	mkdir -p "$SR_DIR/dist"
	tar --no-same-owner -xzf "$tgz" -C "$SR_DIR/dist" || fail schema-registry "" "unpacking $tgz failed"
	[ -f "$SR_DIR/dist/quarkus-run.jar" ] || fail schema-registry "" "$tgz has no quarkus-run.jar"
	rm -f "$tgz" # the copy in the Maven cache stays
	cp "$SR_DIR/dl/.stamp" "$SR_DIR/dist/.stamp"
}

# schema_registry_java: prints a java of version 21 or newer (Apicurio Registry 3.3 is built for 21):
# $SLUICE_SCHEMA_REGISTRY_JAVA, else `java` on PATH, else the newest under /usr/lib/jvm, else Debian's
# openjdk-21 where the release has it.
schema_registry_java() {
	local j v best="" bestv=0
	if [ -n "${SLUICE_SCHEMA_REGISTRY_JAVA:-}" ]; then
		echo "$SLUICE_SCHEMA_REGISTRY_JAVA"
		return 0
	fi
	for j in "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
		[ -x "$j" ] || continue
		v=$(java_major "$j")
		if [ "${v:-0}" -ge 21 ] && [ "$v" -gt "$bestv" ]; then
			best=$j bestv=$v
		fi
	done
	if [ -z "$best" ] && apt-cache policy openjdk-21-jre-headless 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		apt_install openjdk-21-jre-headless
		best=$(ls /usr/lib/jvm/*21*/bin/java 2>/dev/null | head -n1)
	fi
	[ -n "$best" ] || fail schema-registry "" "Apicurio Registry needs Java 21 or newer; none found on PATH or under /usr/lib/jvm (set SLUICE_SCHEMA_REGISTRY_JAVA=/path/to/bin/java)"
	echo "$best"
}

# java_major JAVA: the feature version (17, 21, 25) of that java, from its release file or by asking it.
java_major() {
	local v
	v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$(dirname "$(dirname "$(readlink -f "$1")")")/release" 2>/dev/null)
	[ -n "$v" ] || v=$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/.*java.specification.version = \([0-9]*\).*/\1/p')
	echo "${v:-0}"
}

# The API answers (an empty registry answers []) and offers the three schema types.
schema_registry_probe() {
	curl -sf "$SR_URL/subjects" | grep '^\[' >/dev/null &&
		curl -sf "$SR_URL/schemas/types" | grep '"AVRO"' | grep '"PROTOBUF"' | grep '"JSON"' >/dev/null
}

schema_registry_start() {
	if pid_alive "$SR_PID"; then
		return 0
	fi
	local java
	java=$(schema_registry_java) || return 1
	mkdir -p "$SR_DIR/config" "$SR_DIR/tmp"
	sed -e "s#@PORT@#$SCHEMA_REGISTRY_PORT#" -e "s#@MGMT_PORT@#$SCHEMA_REGISTRY_MGMT_PORT#" -e "s#@DIR@#$SR_DIR#g" \
		"$SVC_ROOT/infra/schema-registry/application.properties" >"$SR_DIR/config/application.properties"
	port_free schema-registry "$SCHEMA_REGISTRY_PORT" "$SCHEMA_REGISTRY_MGMT_PORT" || return 0
	rotate_log "$SR_LOG"
	log "starting schema-registry (Apicurio) on $SR_URL"
	(
		# Quarkus reads config/application.properties from the working dir.
		cd "$SR_DIR" || exit 1
		# C1 only, as for Pulsar: the start is CPU bound and competes with the test build on 2 cores;
		# it halves the CPU time of a start (about 5 s instead of 11 s) and tests need no peak throughput.
		exec setsid "$java" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
			${SLUICE_SCHEMA_REGISTRY_JIT_OPTS--XX:TieredStopAtLevel=1} \
			-Djava.io.tmpdir="$SR_DIR/tmp" -jar "$SR_DIR/dist/quarkus-run.jar" >>"$SR_LOG" 2>&1 </dev/null
	) &
	echo $! >"$SR_PID"
}

schema_registry_wait() { wait_for schema-registry "$SR_LOG" 180 "$SR_PID" schema_registry_probe; }

schema_registry_stop() { stop_pidfile schema-registry "$SR_PID"; }

schema_registry_pid() { pid_alive "$SR_PID" && head -n1 "$SR_PID"; }

schema_registry_env() { echo "SCHEMA_REGISTRY_URL=$SR_URL"; }
