#!/usr/bin/env bash
# Installs headless Chromium from Debian packages when it is missing, for the status page's browser
# test (cmd/sluice TestStatusPageChromium), and prints the path of the browser. Idempotent: with a
# browser present it only prints its path. Tests find the browser through $SLUICE_CHROMIUM or, when
# that is unset, as chromium, chromium-browser or google-chrome on PATH.
set -euo pipefail

find_browser() {
	if [ -n "${SLUICE_CHROMIUM:-}" ]; then
		[ -x "$SLUICE_CHROMIUM" ] || command -v "$SLUICE_CHROMIUM" >/dev/null || return 1
		command -v "$SLUICE_CHROMIUM"
		return 0
	fi
	local b
	for b in chromium chromium-browser google-chrome; do
		if command -v "$b" >/dev/null; then
			command -v "$b"
			return 0
		fi
	done
	return 1
}

if path=$(find_browser); then
	echo "$path"
	exit 0
fi
if [ -n "${SLUICE_CHROMIUM:-}" ]; then
	echo "setup-chromium: SLUICE_CHROMIUM=$SLUICE_CHROMIUM is not an executable; unset it to install Debian's chromium" >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || {
		echo "setup-chromium: chromium is missing and installing it needs root: run as root or install sudo (or apt-get install chromium yourself)" >&2
		exit 1
	}
	SUDO=sudo
fi
command -v apt-get >/dev/null || {
	echo "setup-chromium: chromium is missing and this system has no apt-get: install Chromium and set SLUICE_CHROMIUM to its path" >&2
	exit 1
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$root/build"
logf=$root/build/chromium-apt.log
export DEBIAN_FRONTEND=noninteractive
echo "setup-chromium: installing Debian package chromium (log: $logf)" >&2
# Fonts are not part of chromium's hard dependencies; without one the screenshot has no text.
pkgs=(chromium)
fc-list 2>/dev/null | grep -q . || pkgs+=(fonts-dejavu-core)
if ! $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${pkgs[@]}" >"$logf" 2>&1; then
	$SUDO apt-get -o DPkg::Lock::Timeout=300 update -q >>"$logf" 2>&1 || true
	if ! $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${pkgs[@]}" >>"$logf" 2>&1; then
		echo "setup-chromium: apt-get install ${pkgs[*]} failed; the last lines of $logf:" >&2
		tail -n 20 "$logf" >&2
		exit 1
	fi
fi
path=$(find_browser) || {
	echo "setup-chromium: chromium was installed but is not on PATH" >&2
	exit 1
}
"$path" --version >&2 || true
echo "$path"
