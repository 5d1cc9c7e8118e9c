package deptest

// DefaultName is defaultName, for tests.
var DefaultName = defaultName
