# Confluent's Python client (confluent-kafka with its Avro and Protobuf serializers) in a virtual
# environment: the independent producer and consumer of the schema tests. No process.
# shellcheck shell=bash

SCL_DIR=$SVC_DIR/schemaclient
SCL_VENV=$SCL_DIR/venv
SCL_REQ=$SVC_ROOT/infra/schemaclient/requirements.txt

schemaclient_install() { venv_install schemaclient "$SCL_VENV" "$SCL_REQ"; }

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
