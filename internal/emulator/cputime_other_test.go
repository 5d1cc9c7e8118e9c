//go:build !linux

package emulator_test

import (
	"testing"
	"time"
)

// processCPU and threadCPU are measured on Linux only; elsewhere the
// benchmarks report 0 CPU time.
func processCPU(*testing.B) time.Duration { return 0 }

func threadCPU(*testing.B) time.Duration { return 0 }
