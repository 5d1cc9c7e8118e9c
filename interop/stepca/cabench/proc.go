package cabench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// atClkTck is the auxiliary vector entry the kernel passes every process
// with the clock tick rate (what sysconf(_SC_CLK_TCK) reads).
const atClkTck = 17

var clkTck = sync.OnceValues(func() (int64, error) {
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 0, fmt.Errorf("reading the clock tick rate: %w", err)
	}
	for i := 0; i+16 <= len(auxv); i += 16 {
		key, val := binary.NativeEndian.Uint64(auxv[i:]), binary.NativeEndian.Uint64(auxv[i+8:])
		if key == atClkTck && val > 0 {
			return int64(val), nil
		}
		if key == 0 {
			break
		}
	}
	return 0, errors.New("the auxiliary vector (/proc/self/auxv) has no AT_CLKTCK")
})

// processCPU is the user and system CPU time process pid has used, from
// utime and stime in /proc/PID/stat (clock ticks).
func processCPU(pid int) (time.Duration, error) {
	tck, err := clkTck()
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after the last ')' start with field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want at least 13", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	ticks := utime + stime
	return time.Duration(ticks) * time.Second / time.Duration(tck), nil
}

// processRSS is process pid's resident set size (VmRSS) in bytes.
func processRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS line", pid)
}
