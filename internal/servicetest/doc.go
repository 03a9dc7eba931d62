// Package servicetest holds one smoke test per test service (Kafka, Pulsar, PostgreSQL, Redis,
// Iceberg with PyIceberg as the independent reader), each going through the client library the
// connectors use. The services come from `make services`; see internal/testenv for how a missing
// service fails (CI=true) or skips the test.
package servicetest
