package identity

// SetWriteStep calls f at each step of WritePair until the test ends.
func SetWriteStep(f func(step string)) (restore func()) {
	old := writeStep
	writeStep = f
	return func() { writeStep = old }
}
