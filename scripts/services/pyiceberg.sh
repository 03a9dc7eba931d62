# PyIceberg in a virtual environment: the independent reader of Iceberg tables. No process.
# shellcheck shell=bash

PYI_DIR=$SVC_DIR/pyiceberg
PYI_VENV=$PYI_DIR/venv
PYI_REQ=$SVC_ROOT/infra/pyiceberg/requirements.txt

pyiceberg_install() { venv_install pyiceberg "$PYI_VENV" "$PYI_REQ"; }

pyiceberg_probe() { "$PYI_VENV/bin/python" "$SVC_ROOT/infra/pyiceberg/probe.py"; }

pyiceberg_start() { :; }

pyiceberg_wait() {
	local out
	out=$(pyiceberg_probe 2>&1) || {
		echo "$out" >"$PYI_DIR/probe.log"
		fail pyiceberg "$PYI_DIR/probe.log" "the PyIceberg round trip failed"
	}
}

pyiceberg_stop() { :; }

pyiceberg_pid() { return 1; }

pyiceberg_env() {
	echo "PYICEBERG_PYTHON=$PYI_VENV/bin/python"
	mkdir -p "$SVC_DIR/iceberg/warehouse"
	echo "ICEBERG_WAREHOUSE=$SVC_DIR/iceberg/warehouse"
}
