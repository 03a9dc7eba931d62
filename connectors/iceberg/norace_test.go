//go:build !race

package iceberg_test

const raceScale = 1
