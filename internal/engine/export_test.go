package engine

// SetCodecAttempts sets how many times a record is tried against an unavailable schema registry,
// for the duration of a test.
func SetCodecAttempts(n int) (restore func()) {
	old := maxCodecAttempts
	maxCodecAttempts = n
	return func() { maxCodecAttempts = old }
}
