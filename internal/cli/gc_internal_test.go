package cli

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestTuneServeGC: ca serve's garbage collector target applies only when
// GOGC does not choose one.
func TestTuneServeGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	t.Setenv("GOGC", "50")
	tuneServeGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the GC percent became %d, want it left at 100", got)
	}

	// t.Setenv restores GOGC at the end; unset it for this part.
	os.Unsetenv("GOGC")
	tuneServeGC()
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Errorf("without GOGC, the GC percent is %d, want %d", got, serveGCPercent)
	}
}
