//go:build race

package iceberg_test

// raceScale divides the record counts of the large tests under the race detector, which makes
// converting and writing Parquet some ten times slower: they check the same things on fewer rows.
const raceScale = 10
