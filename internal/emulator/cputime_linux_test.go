package emulator_test

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration { return rusage(b, syscall.RUSAGE_SELF) }

// threadCPU is the CPU time of the calling thread.
func threadCPU(b *testing.B) time.Duration { return rusage(b, rusageThread) }

// rusageThread is Linux's RUSAGE_THREAD, which package syscall does not name.
const rusageThread = 1

func rusage(b *testing.B, who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
