# PyIceberg in a virtual environment: the independent reader of Iceberg tables. No process.
# shellcheck shell=bash

PYI_DIR=$SVC_DIR/pyiceberg
PYI_VENV=$PYI_DIR/venv
PYI_REQ=$SVC_ROOT/infra/pyiceberg/requirements.txt

pyiceberg_install() {
	local sum py
	sum=$(sha256sum "$PYI_REQ" | cut -d' ' -f1)
	if [ -x "$PYI_VENV/bin/python" ] && [ "$(cat "$PYI_VENV/.stamp" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	py=${PYTHON:-python3}
	command -v "$py" >/dev/null || apt_install python3 python3-venv
	rm -rf "$PYI_VENV"
	mkdir -p "$PYI_DIR"
	if ! "$py" -m venv "$PYI_VENV" >"$PYI_DIR/venv.log" 2>&1; then
		apt_install python3-venv
		"$py" -m venv "$PYI_VENV" >"$PYI_DIR/venv.log" 2>&1 || fail pyiceberg "$PYI_DIR/venv.log" "python3 -m venv failed"
	fi
	log "installing pyiceberg into $PYI_VENV"
	PIP_CACHE_DIR=$SVC_CACHE/pip "$PYI_VENV/bin/pip" install -q --disable-pip-version-check -r "$PYI_REQ" \
		>"$PYI_DIR/pip.log" 2>&1 || fail pyiceberg "$PYI_DIR/pip.log" "pip install failed"
	echo "$sum" >"$PYI_VENV/.stamp"
}

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
