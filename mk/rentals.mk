# The rental listings platform end to end (examples/rental-listings), against the services of
# `make services`: it builds sluice, the listing site and the e2e program, which resets the
# platform's Postgres tables, Redis keys and Pulsar topic, starts the site (RENTALS_PAGES pages of
# listings, RENTALS_EVENTS interaction events posted to the webhook and as many on the WebSocket
# feed), runs listings.yaml, events.yaml and activity.yaml in one `sluice run`, waits until every
# record is accounted for (RENTALS_DEADLINE at most) and prints the accounting; it fails when a
# record is not. Everything it writes (logs, data dirs, the Iceberg catalog and warehouse) stays in
# RENTALS_DIR. `make e2e` runs it too.
RENTALS_DIR      := build/e2e-rentals
RENTALS_PAGES    ?= 300
RENTALS_EVENTS   ?= 2000
RENTALS_SEED     ?= 1
RENTALS_DEADLINE ?= 5m

.PHONY: e2e-rentals rentals-tools
rentals-tools:
	$(GO) build -o build/bin/listingsite ./examples/rental-listings/listingsite
	$(GO) build -o build/bin/e2e-rentals ./examples/rental-listings/e2e

e2e-rentals: services build rentals-tools
	@set -a; . build/services.env; set +a; \
	build/bin/e2e-rentals -sluice $(BIN) -site build/bin/listingsite -manifests examples/rental-listings \
		-dir $(RENTALS_DIR) -deadline $(RENTALS_DEADLINE) \
		-site-args "-seed $(RENTALS_SEED) -pages $(RENTALS_PAGES) -webhook-events $(RENTALS_EVENTS) -feed-events $(RENTALS_EVENTS)"
