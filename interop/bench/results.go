package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Raw file kinds: how a step's raw file is read.
const (
	KindGoBench   = "gobench"   // Go's benchmark format (go test -bench, cabench, the orchestrator's own figures)
	KindHyperfine = "hyperfine" // hyperfine --export-json
	KindTimeV     = "timev"     // /usr/bin/time -v, one block per run, each after a "command: " line
	KindInitTrace = "inittrace" // GODEBUG=inittrace=1 standard error, runs separated by "run: N" lines
	KindVendbench = "vendbench" // interop/awshelper/cmd/vendbench -json
	KindNote      = "note"      // a command that sets up the others, with no raw file
)

// Manifest describes one section's run: where, when, what ran and which
// raw file holds what each command printed. It is <section>.json in the
// results directory; a section without one was never measured.
type Manifest struct {
	Section  string   `json:"section"`
	Date     string   `json:"date"`            // start, UTC, RFC 3339
	Elapsed  float64  `json:"elapsed_seconds"` // the whole section
	Machine  Machine  `json:"machine"`
	Commit   string   `json:"commit"` // keyless's commit measured
	Dirty    bool     `json:"dirty"`  // the working tree had changes to tracked files
	Large    bool     `json:"large"`  // KEYLESS_BENCH_LARGE=1: the large sizes ran
	Quick    bool     `json:"quick"`  // -quick: reduced durations, a check of the pipeline rather than a measurement
	Steps    []Step   `json:"steps"`
	Warnings []string `json:"warnings,omitempty"`
}

// Machine is where a section ran.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemoryMB int    `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	LoadAvg  string `json:"loadavg_before"` // /proc/loadavg's first three fields, before the section
}

// String is the machine line of a section.
func (m Machine) String() string {
	mem := ""
	if m.MemoryMB > 0 {
		mem = fmt.Sprintf(", %.0f GiB", float64(m.MemoryMB)/1024)
	}
	return fmt.Sprintf("%d CPUs (%s)%s, Linux %s, %s, load average %s before the run", m.CPUs, m.CPUModel, mem, m.Kernel, m.Go, m.LoadAvg)
}

// Step is one command of a section and the raw file holding its output.
type Step struct {
	Name    string `json:"name"`    // what it measures, unique in the section
	Command string `json:"command"` // as a reader would type it, from Dir
	Dir     string `json:"dir"`     // relative to the repository root ("" for the root)
	Raw     string `json:"raw"`     // file name in the results directory
	Kind    string `json:"kind"`    // KindGoBench, ...
}

// Results is a results directory (docs/benchmarks): manifests and raw
// files.
type Results struct {
	Dir string
	// Manifests by section ID; a section with none is missing.
	Manifests map[string]*Manifest
}

// ReadResults reads every section manifest in dir. A missing directory
// is an empty one: nothing was measured.
func ReadResults(dir string) (*Results, error) {
	r := &Results{Dir: dir, Manifests: map[string]*Manifest{}}
	for _, s := range Sections {
		b, err := os.ReadFile(filepath.Join(dir, s.ID+".json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, s.ID+".json"), err)
		}
		if m.Section != s.ID {
			return nil, fmt.Errorf("%s: section %q, want %q", filepath.Join(dir, s.ID+".json"), m.Section, s.ID)
		}
		for _, st := range m.Steps {
			if (st.Raw == "") != (st.Kind == KindNote) || strings.ContainsAny(st.Raw, `/\`) {
				return nil, fmt.Errorf("%s: step %q: raw file %q must be a file name in %s", filepath.Join(dir, s.ID+".json"), st.Name, st.Raw, dir)
			}
		}
		r.Manifests[s.ID] = &m
	}
	return r, nil
}

// Step returns section id's step by name, or nil.
func (r *Results) Step(id, name string) *Step {
	m := r.Manifests[id]
	if m == nil {
		return nil
	}
	for i := range m.Steps {
		if m.Steps[i].Name == name {
			return &m.Steps[i]
		}
	}
	return nil
}

// Read returns a step's raw file.
func (r *Results) Read(st *Step) ([]byte, error) {
	return os.ReadFile(filepath.Join(r.Dir, st.Raw))
}

// WriteManifest writes m as dir/<section>.json.
func WriteManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, m.Section+".json"), append(b, '\n'), 0o644)
}
