// Package servicetest holds one smoke test per test service (Kafka, Pulsar, PostgreSQL, Redis,
// Iceberg with PyIceberg as the independent reader, the schema registry), each going through the
// client library the connectors use (plain HTTP for the schema registry). The services come from `make services`; see internal/testenv for how a missing
// service fails (CI=true) or skips the test.
package servicetest
