#!/usr/bin/env bash
# Installs the validators of the sidecar kit (examples/kubernetes) into build/tools, once per
# version: promtool (built from the Prometheus Go module) and kubernetes-validate (a PyPI package
# that bundles the Kubernetes JSON schemas, so validating needs no download at test time).
# Prints nothing when both are present; fails naming the log when an install fails.
#
#   scripts/kubernetes-tools.sh promtool             # prints the promtool path
#   scripts/kubernetes-tools.sh kubernetes-validate  # prints the kubernetes-validate path
set -euo pipefail

PROMTOOL_VERSION=${PROMTOOL_VERSION:-v0.316.0}   # the Go module version of Prometheus 3.16
KUBERNETES_VALIDATE_VERSION=${KUBERNETES_VALIDATE_VERSION:-1.37.0}

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${SLUICE_TOOLS_DIR:-$root/build/tools}
mkdir -p "$tools"

fail() {
	echo "kubernetes-tools: $1 (log: $2)" >&2
	tail -n 20 "$2" >&2 || true
	exit 1
}

install_promtool() {
	local dir=$tools/promtool-$PROMTOOL_VERSION bin
	bin=$dir/promtool
	if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
		echo "$bin"
		return
	fi
	mkdir -p "$dir"
	echo "kubernetes-tools: building promtool $PROMTOOL_VERSION into $dir (a few minutes, once)" >&2
	GOBIN=$dir GOFLAGS=-buildvcs=false ${GO:-go} install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" \
		>"$dir/install.log" 2>&1 || fail "go install promtool@$PROMTOOL_VERSION failed" "$dir/install.log"
	"$bin" --version >/dev/null 2>&1 || fail "promtool does not run" "$dir/install.log"
	echo "$bin"
}

install_kubernetes_validate() {
	local venv=$tools/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION bin
	bin=$venv/bin/kubernetes-validate
	if [ -x "$bin" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$KUBERNETES_VALIDATE_VERSION" ]; then
		echo "$bin"
		return
	fi
	rm -rf "$venv"
	mkdir -p "$(dirname "$venv")"
	echo "kubernetes-tools: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv" >&2
	local log=$tools/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION.log
	{ ${PYTHON:-python3} -m venv "$venv" &&
		"$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"; } \
		>"$log" 2>&1 || fail "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed (python3-venv missing? apt-get install python3-venv)" "$log"
	echo "$KUBERNETES_VALIDATE_VERSION" >"$venv/.stamp"
	echo "$bin"
}

case ${1:-} in
promtool) install_promtool ;;
kubernetes-validate) install_kubernetes_validate ;;
*)
	echo "usage: $0 promtool|kubernetes-validate" >&2
	exit 2
	;;
esac
