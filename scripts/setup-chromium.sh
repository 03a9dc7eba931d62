#!/usr/bin/env bash
# Installs headless Chromium, and Tesseract OCR to read its screenshots, from Debian packages when
# they are missing, for the status page's browser tests (cmd/sluice TestStatusPageInChromium,
# internal/admin TestStatusPage*InChromium), and prints the path of the browser. Idempotent: with
# both present it only prints the path. Tests find the browser through $SLUICE_CHROMIUM or, when
# that is unset, as chromium, chromium-browser or google-chrome on PATH; Tesseract as tesseract on
# PATH.
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

pkgs=()
if ! path=$(find_browser); then
	pkgs+=(chromium)
fi
command -v tesseract >/dev/null || pkgs+=(tesseract-ocr tesseract-ocr-eng)
# Fonts are not part of chromium's hard dependencies; without one the screenshot has no text.
fc-list 2>/dev/null | grep -q . || pkgs+=(fonts-dejavu-core)
if [ ${#pkgs[@]} = 0 ]; then
	echo "$path"
	exit 0
fi
if [ -z "$path" ] && [ -n "${SLUICE_CHROMIUM:-}" ]; then
	echo "setup-chromium: SLUICE_CHROMIUM=$SLUICE_CHROMIUM is not an executable; unset it to install Debian's chromium" >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || {
		echo "setup-chromium: ${pkgs[*]} missing; installing needs root: run as root or install sudo (or apt-get install ${pkgs[*]} yourself)" >&2
		exit 1
	}
	SUDO=sudo
fi
command -v apt-get >/dev/null || {
	echo "setup-chromium: ${pkgs[*]} missing and this system has no apt-get: install Chromium (set SLUICE_CHROMIUM to its path) and Tesseract yourself" >&2
	exit 1
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$root/build"
logf=$root/build/chromium-apt.log
export DEBIAN_FRONTEND=noninteractive
echo "setup-chromium: installing Debian packages ${pkgs[*]} (log: $logf)" >&2
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
