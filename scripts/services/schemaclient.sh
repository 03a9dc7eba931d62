# Confluent's Python client (confluent-kafka with its Avro and Protobuf serializers) in a virtual
# environment: the independent producer and consumer of the schema tests. No process.
# shellcheck shell=bash

SCL_DIR=$SVC_DIR/schemaclient
SCL_VENV=$SCL_DIR/venv
SCL_REQ=$SVC_ROOT/infra/schemaclient/requirements.txt

schemaclient_install() {
	local sum py
	sum=$(sha256sum "$SCL_REQ" | cut -d' ' -f1)
	if [ -x "$SCL_VENV/bin/python" ] && [ "$(cat "$SCL_VENV/.stamp" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	py=${PYTHON:-python3}
	command -v "$py" >/dev/null || apt_install python3 python3-venv
	rm -rf "$SCL_VENV"
	mkdir -p "$SCL_DIR"
	if ! "$py" -m venv "$SCL_VENV" >"$SCL_DIR/venv.log" 2>&1; then
		apt_install python3-venv
		"$py" -m venv "$SCL_VENV" >"$SCL_DIR/venv.log" 2>&1 || fail schemaclient "$SCL_DIR/venv.log" "python3 -m venv failed"
	fi
	log "installing confluent-kafka into $SCL_VENV"
	PIP_CACHE_DIR=$SVC_CACHE/pip "$SCL_VENV/bin/pip" install -q --disable-pip-version-check -r "$SCL_REQ" \
		>"$SCL_DIR/pip.log" 2>&1 || fail schemaclient "$SCL_DIR/pip.log" "pip install failed"
	echo "$sum" >"$SCL_VENV/.stamp"
}

schemaclient_probe() { "$SCL_VENV/bin/python" -c 'import confluent_kafka, fastavro, google.protobuf, grpc_tools.protoc'; }

schemaclient_start() { :; }

schemaclient_wait() {
	local out
	out=$(schemaclient_probe 2>&1) || {
		echo "$out" >"$SCL_DIR/probe.log"
		fail schemaclient "$SCL_DIR/probe.log" "the schema client's modules do not import"
	}
}

schemaclient_stop() { :; }

schemaclient_pid() { return 1; }

schemaclient_env() { echo "SCHEMA_CLIENT_PYTHON=$SCL_VENV/bin/python"; }
