package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Hyperfine is hyperfine's --export-json, the fields the document uses.
// Times are in seconds.
type Hyperfine struct {
	Results []HyperfineResult `json:"results"`
}

// HyperfineResult is one command of a hyperfine run; Command is its
// --command-name.
type HyperfineResult struct {
	Command string    `json:"command"`
	Mean    float64   `json:"mean"`
	Stddev  float64   `json:"stddev"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	User    float64   `json:"user"`
	System  float64   `json:"system"`
	Times   []float64 `json:"times"`
}

// ParseHyperfine reads hyperfine's --export-json.
func ParseHyperfine(file string, data []byte) (*Hyperfine, error) {
	var h Hyperfine
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(h.Results) == 0 {
		return nil, fmt.Errorf("%s: no results", file)
	}
	return &h, nil
}

// Get returns the result of the command named name, or nil.
func (h *Hyperfine) Get(name string) *HyperfineResult {
	for i := range h.Results {
		if h.Results[i].Command == name {
			return &h.Results[i]
		}
	}
	return nil
}

// TimeV is /usr/bin/time -v's figures for one run.
type TimeV struct {
	MaxRSSKB    float64
	MinorFaults float64
	MajorFaults float64
	User, Sys   float64 // seconds
}

// ParseTimeV reads runs of /usr/bin/time -v, each after a line
// "command: NAME", into runs by name, in the order named.
func ParseTimeV(file string, data []byte) (names []string, runs map[string][]TimeV, err error) {
	runs = map[string][]TimeV{}
	var cur *TimeV
	name := ""
	flush := func() {
		if cur != nil {
			runs[name] = append(runs[name], *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if n, ok := strings.CutPrefix(l, "command: "); ok {
			flush()
			name = n
			if _, seen := runs[name]; !seen {
				names = append(names, name)
				runs[name] = nil
			}
			continue
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		if k == "Command being timed" {
			if name == "" {
				return nil, nil, fmt.Errorf("%s:%d: a run before any \"command: NAME\" line", file, line)
			}
			flush()
			cur = &TimeV{}
			continue
		}
		if cur == nil {
			continue
		}
		var dst *float64
		switch k {
		case "Maximum resident set size (kbytes)":
			dst = &cur.MaxRSSKB
		case "Minor (reclaiming a frame) page faults":
			dst = &cur.MinorFaults
		case "Major (requiring I/O) page faults":
			dst = &cur.MajorFaults
		case "User time (seconds)":
			dst = &cur.User
		case "System time (seconds)":
			dst = &cur.Sys
		default:
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %s: %v", file, line, k, err)
		}
		*dst = f
	}
	flush()
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("%s: no runs", file)
	}
	return names, runs, nil
}

// Init is one package's init in GODEBUG=inittrace=1 output, over runs.
type Init struct {
	Package string
	ClockMS Stat // wall time of the init, per run
	Bytes   Stat
	Allocs  Stat
}

// ParseInitTrace reads GODEBUG=inittrace=1's lines ("init PKG @T ms, C
// ms clock, B bytes, A allocs") from runs separated by "run: N" lines,
// and returns each package's inits over the runs, the costliest (median
// clock) first, and the number of runs.
func ParseInitTrace(file string, data []byte) ([]*Init, int, error) {
	by := map[string]*Init{}
	var order []*Init
	runs := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "run: ") {
			runs++
			continue
		}
		rest, ok := strings.CutPrefix(l, "init ")
		if !ok {
			continue
		}
		var pkg string
		var at, clock, bytes, allocs float64
		if _, err := fmt.Sscanf(rest, "%s @%g ms, %g ms clock, %g bytes, %g allocs", &pkg, &at, &clock, &bytes, &allocs); err != nil {
			return nil, 0, fmt.Errorf("%s:%d: %q: %v", file, line, l, err)
		}
		in := by[pkg]
		if in == nil {
			in = &Init{Package: pkg}
			by[pkg] = in
			order = append(order, in)
		}
		in.ClockMS.Values = append(in.ClockMS.Values, clock)
		in.Bytes.Values = append(in.Bytes.Values, bytes)
		in.Allocs.Values = append(in.Allocs.Values, allocs)
	}
	if len(order) == 0 {
		return nil, 0, fmt.Errorf("%s: no init lines", file)
	}
	if runs == 0 {
		runs = 1
	}
	sort.SliceStable(order, func(a, b int) bool { return order[a].ClockMS.Median() > order[b].ClockMS.Median() })
	return order, runs, nil
}

// Vendbench is interop/awshelper/cmd/vendbench -json, the fields the
// document uses.
type Vendbench struct {
	Duration       string    `json:"duration"`
	Rate           float64   `json:"rate"`
	Concurrency    int       `json:"concurrency"`
	Agent          *VendSide `json:"keyless_agent"`
	Serve          *VendSide `json:"keyless_serve"`
	Helper         *VendSide `json:"aws_helper_serve"`
	CreateSessions int64     `json:"create_sessions"`
}

// VendSide is one server of a vendbench run.
type VendSide struct {
	Name        string     `json:"name"`
	Version     string     `json:"version"`
	IdleMemory  VendMemory `json:"idle_memory"`
	AfterMemory VendMemory `json:"memory_after_load"`
	Throughput  struct {
		PerSecond      float64 `json:"vends_per_second"`
		ServerCPUPerOp float64 `json:"server_cpu_us_per_vend"`
		Failed         int     `json:"failed"`
	} `json:"throughput"`
	Latency struct {
		FromSchedule struct {
			P50  float64 `json:"p50_us"`
			P99  float64 `json:"p99_us"`
			P999 float64 `json:"p99_9_us"`
			Max  float64 `json:"max_us"`
		} `json:"from_schedule"`
		ServerCPUPerOp float64 `json:"server_cpu_us_per_vend"`
		Failed         int     `json:"failed"`
		Late           int     `json:"late"`
	} `json:"latency"`
}

// VendMemory is a server's memory, in MiB (VmRSS, VmHWM).
type VendMemory struct {
	RSS  float64 `json:"rss_mib"`
	Peak float64 `json:"peak_mib"`
}

// ParseVendbench reads vendbench -json.
func ParseVendbench(file string, data []byte) (*Vendbench, error) {
	var v Vendbench
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if v.Agent == nil || v.Serve == nil || v.Helper == nil {
		return nil, fmt.Errorf("%s: want keyless_agent, keyless_serve and aws_helper_serve", file)
	}
	return &v, nil
}
