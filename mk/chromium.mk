# Headless Chromium and Tesseract OCR for the status page's browser tests (cmd/sluice
# TestStatusPageInChromium, internal/admin TestStatusPage*InChromium): installed from Debian
# packages when missing (scripts/setup-chromium.sh). The tests find the browser as $SLUICE_CHROMIUM
# or chromium on PATH and fail when it is missing under CI=true.
.PHONY: chromium
TEST_PREREQS += chromium

chromium:
	@bash scripts/setup-chromium.sh >/dev/null
