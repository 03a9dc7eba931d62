# Real servers for the integration tests (Kafka, Pulsar, PostgreSQL, Redis, Iceberg REST catalog,
# schema registry, PyIceberg). See scripts/services/README.md.
SERVICES_SH := bash scripts/services/services.sh

.PHONY: services services-down services-status services-summary

# Installs what is missing, starts everything on 127.0.0.1 and writes build/services.env. Idempotent.
services:
	$(SERVICES_SH) up

services-down:
	$(SERVICES_SH) down

services-status:
	$(SERVICES_SH) status

# What ran against which service since the last summary (from build/test-services.log).
services-summary:
	@bash scripts/services/summary.sh

TEST_PREREQS += services
TEST_TARGETS += services-summary
