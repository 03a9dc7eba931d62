# The rental listings platform end to end (examples/rental-listings), against the services of
# `make services`: it builds sluice, the listing site and the e2e program, which resets the
# platform's Postgres tables, Redis keys and Pulsar topic, starts the site (RENTALS_PAGES pages of
# listings, RENTALS_EVENTS interaction events posted to the webhook and as many on the WebSocket
# feed), runs listings.yaml, events.yaml and activity.yaml in one `sluice run`, waits until every
# record is accounted for (RENTALS_DEADLINE at most) and prints the accounting; it fails when a
# record is not. Everything it writes (logs, data dirs, the Iceberg catalog and warehouse) stays in
# RENTALS_DIR. With RENTALS_KILLS above 0 it kills `sluice run` with SIGKILL that many times during
# the crawl and starts it again; the accounting then allows only what at-least-once delivery writes
# twice (history rows, dead letters, Pulsar messages) and feed events in flight in a killed process.
# e2e-rentals-faults runs it so with 2 kills and events at 200/s (so that they flow during the
# kills), in build/e2e-rentals-faults. `make e2e` runs both.
RENTALS_DIR      ?= build/e2e-rentals
RENTALS_PAGES    ?= 300
RENTALS_EVENTS   ?= 2000
RENTALS_SEED     ?= 1
RENTALS_DEADLINE ?= 5m
RENTALS_KILLS    ?= 0
RENTALS_RATE     ?= 1000

.PHONY: e2e-rentals e2e-rentals-faults rentals-tools
rentals-tools:
	$(GO) build -o build/bin/listingsite ./examples/rental-listings/listingsite
	$(GO) build -o build/bin/e2e-rentals ./examples/rental-listings/e2e

e2e-rentals: services build rentals-tools
	@set -a; . build/services.env; set +a; \
	build/bin/e2e-rentals -sluice $(BIN) -site build/bin/listingsite -manifests examples/rental-listings \
		-dir $(RENTALS_DIR) -deadline $(RENTALS_DEADLINE) -kills $(RENTALS_KILLS) \
		-site-args "-seed $(RENTALS_SEED) -pages $(RENTALS_PAGES) -webhook-events $(RENTALS_EVENTS) -feed-events $(RENTALS_EVENTS) -event-rate $(RENTALS_RATE)"

e2e-rentals-faults:
	$(MAKE) e2e-rentals RENTALS_KILLS=2 RENTALS_RATE=200 RENTALS_DIR=build/e2e-rentals-faults
