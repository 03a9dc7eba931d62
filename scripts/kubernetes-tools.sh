#!/usr/bin/env bash
# Installs the validators of the sidecar kit (examples/kubernetes) into build/tools, once per
# version: promtool (built from the Prometheus Go module), kustomize (from its Go module: renders
# the kit as `kubectl apply -k` does) and kubernetes-validate (a PyPI package that bundles the
# Kubernetes JSON schemas, so validating needs no download at test time). Prints the tool's path;
# fails naming the log when an install fails.
#
#   scripts/kubernetes-tools.sh promtool
#   scripts/kubernetes-tools.sh kustomize
#   scripts/kubernetes-tools.sh kubernetes-validate
set -euo pipefail

PROMTOOL_VERSION=${PROMTOOL_VERSION:-v0.316.0}   # the Go module version of Prometheus 3.16
KUBERNETES_VALIDATE_VERSION=${KUBERNETES_VALIDATE_VERSION:-1.37.0}
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.8.1}

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${SLUICE_TOOLS_DIR:-$root/build/tools}
mkdir -p "$tools"

fail() {
	echo "kubernetes-tools: $1 (log: $2)" >&2
	tail -n 20 "$2" >&2 || true
	exit 1
}

# install_go_tool NAME VERSION PACKAGE [TAGS]: go installs PACKAGE@VERSION (built with the tags
# TAGS) into build/tools/NAME-VERSION[-TAGS] unless a working binary is there already; prints the
# binary's path.
install_go_tool() {
	local name=$1 version=$2 pkg=$3 tags=${4:-} dir bin
	dir=$tools/$name-$version${tags:+-$tags}
	bin=$dir/$name
	if [ -x "$bin" ] && { "$bin" version || "$bin" --version; } >/dev/null 2>&1; then
		echo "$bin"
		return
	fi
	mkdir -p "$dir"
	echo "kubernetes-tools: building $name $version into $dir (minutes the first time)" >&2
	GOBIN=$dir GOFLAGS=-buildvcs=false ${GO:-go} install ${tags:+-tags "$tags"} "$pkg@$version" \
		>"$dir/install.log" 2>&1 || fail "go install $pkg@$version failed" "$dir/install.log"
	[ -x "$bin" ] || fail "go install $pkg@$version left no $bin" "$dir/install.log"
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
# remove_all_sd leaves out the service discoveries promtool's checks never run (AWS, Azure, GCE
# and the rest; Kubernetes stays): the first build takes about 4 minutes instead of 9.
promtool) install_go_tool promtool "$PROMTOOL_VERSION" github.com/prometheus/prometheus/cmd/promtool remove_all_sd ;;
kustomize) install_go_tool kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5 ;;
kubernetes-validate) install_kubernetes_validate ;;
*)
	echo "usage: $0 promtool|kustomize|kubernetes-validate" >&2
	exit 2
	;;
esac
