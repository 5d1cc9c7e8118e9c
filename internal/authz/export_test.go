package authz

// MaxJobCache is maxJobCache, for tests.
const MaxJobCache = maxJobCache

// JobCacheLen returns how many job tokens are cached.
func (v *Verifier) JobCacheLen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.jobCache)
}
