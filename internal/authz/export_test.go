package authz

// Bounds, for tests.
const (
	MaxJobCache = maxJobCache
	MaxNegCache = maxNegCache
	MaxJobCalls = maxJobCalls
)

// JobCacheLen returns how many verified job tokens are cached.
func (v *Verifier) JobCacheLen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.jobCache)
}

// NegCacheLen returns how many refused job tokens are cached.
func (v *Verifier) NegCacheLen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.negCache)
}
