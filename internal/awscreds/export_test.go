package awscreds

import (
	"os"
	"time"
)

const BundleSettle = bundleSettle

// SetBundleReadHook sets the hook that runs between a miss's read of
// AWS_CA_BUNDLE and its second stat of it, until the test ends.
func SetBundleReadHook(cleanup func(func()), hook func()) {
	testHookBundleRead = hook
	cleanup(func() { testHookBundleRead = nil })
}

// ChangeTime is the file's change time, false where fileID knows none.
func ChangeTime(info os.FileInfo) (time.Time, bool) {
	id, ok := fileID(info)
	return id.ctime, ok
}
