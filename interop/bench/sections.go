package bench

// Section is one part of docs/benchmarks.md, measured by
// `scripts/bench -only ID` into docs/benchmarks/ID.json and its raw files.
type Section struct {
	ID    string
	Title string
}

// Sections in the document's order.
var Sections = []Section{
	{"cp", "credential-process: a cache hit against AWS's helper and Go's start-up floor"},
	{"ca", "CA: CPU per certificate against step-ca"},
	{"emulator", "Emulator: CreateSession throughput and how it grows with trust anchors"},
	{"ca-scale", "CA: how signing, listing, the CRL and the store grow"},
	{"agent", "keyless agent and keyless serve against AWS's helper serve"},
	{"signing", "SigV4-X509 signing and verification"},
	{"policy", "Trust-policy evaluation"},
	{"store", "The CA's store"},
	{"dev", "keyless dev --once"},
	{"ca-ops", "CA idle memory and keyless ca list"},
}

// SectionByID returns the section, or nil.
func SectionByID(id string) *Section {
	for i := range Sections {
		if Sections[i].ID == id {
			return &Sections[i]
		}
	}
	return nil
}

// GoBenchSpec is one `go test -bench` step. The package is found by
// looking for `func Benchmark<Func>(` in the repository's test files, so a
// benchmark that moves needs no change here; a benchmark that is renamed
// does.
type GoBenchSpec struct {
	Section string
	Name    string   // the step's name in the manifest and its raw file's
	Funcs   []string // benchmark functions, without "Benchmark"; -bench is ^Benchmark(F1|F2)$
	// Benchtime and Count for a full run; -quick shortens them.
	Benchtime string
	Count     int
}

// GoBenches is every Go benchmark scripts/bench runs: the one table to
// edit when a benchmark is added or renamed. Large sizes run inside these
// benchmarks when KEYLESS_BENCH_LARGE=1 is in their environment.
var GoBenches = []GoBenchSpec{
	{Section: "ca", Name: "inprocess", Funcs: []string{"Sign"}, Benchtime: "3s", Count: 3},
	{Section: "emulator", Name: "loopback", Funcs: []string{"CreateSessionLoopback", "CreateSessionHandler"}, Benchtime: "3s", Count: 3},
	{Section: "emulator", Name: "scale", Funcs: []string{"ScaleEmulator", "ScaleEmulatorControlPlane"}, Benchtime: "3s", Count: 1},
	{Section: "ca-scale", Name: "scale", Funcs: []string{"ScaleCASign", "ScaleCAList", "ScaleCRL"}, Benchtime: "1s", Count: 1},
	// Each iteration starts a CA process on the store (PBKDF2 included).
	{Section: "ca-scale", Name: "scale-store", Funcs: []string{"ScaleCAStore"}, Benchtime: "3x", Count: 1},
	{Section: "agent", Name: "scale", Funcs: []string{"ScaleAgentVend"}, Benchtime: "2s", Count: 1},
	{Section: "signing", Name: "sigv4", Funcs: []string{"Sign", "Verify", "HMAC"}, Benchtime: "1s", Count: 3},
	{Section: "policy", Name: "iampolicy", Funcs: []string{"EvaluateTrustPolicy", "ParseTrustPolicy"}, Benchtime: "1s", Count: 3},
	{Section: "store", Name: "store", Funcs: []string{"Sign"}, Benchtime: "2s", Count: 3},
}

// goBenchPackages pins a benchmark whose name is in more than one
// package (BenchmarkSign is in sigv4, store and caapi) to its package.
var goBenchPackages = map[string]string{
	"ca":      "internal/ca/caapi",
	"signing": "internal/sigv4",
	"store":   "internal/store",
}

// ScaleSpec is one scaling benchmark family: a table and a panel of the
// plot. Cost is the per-request figure compared across sizes. Its
// results are in its section's GoBenches steps whose names start with
// "scale".
type ScaleSpec struct {
	Section string
	Base    string // the benchmark's name without "Benchmark"
	SizeKey string // the sub-benchmark key naming the size
	What    string // what grows, for the table's caption and the plot's panel
	// Cost is the unit of the per-request figure (ns/op by default).
	Cost string
	// Main names the series of results with no other sub-name when
	// there are other series (ScaleEmulator/refused/anchors=N beside
	// ScaleEmulator/anchors=N); the base name by default.
	Main string
	// Judged: a constant or logarithmic cost is possible, so the issue's
	// bound applies: the largest size's cost at most MaxGrowth times the
	// smallest's. Otherwise the growth is written down, not judged.
	Judged bool
}

// MaxGrowth is issue 16's bound on a scaling table where constant or
// logarithmic cost is possible.
const MaxGrowth = 1.5

// Scales are the scaling families, in the document's order.
var Scales = []ScaleSpec{
	{Section: "emulator", Base: "ScaleEmulator", SizeKey: "anchors", What: "CreateSession with N trust anchors, roles and profiles", Cost: "cpu-us/session", Judged: true, Main: "accepted"},
	// The state file holds every resource and is rewritten on a change.
	{Section: "emulator", Base: "ScaleEmulatorControlPlane", SizeKey: "anchors", What: "a control-plane change with N anchors, roles and profiles (state file)"},
	{Section: "ca-scale", Base: "ScaleCASign", SizeKey: "certs", What: "CA sign with N certificates in the store", Cost: "cpu-us/cert", Judged: true},
	{Section: "ca-scale", Base: "ScaleCAList", SizeKey: "revocations", What: "ca list --expiring with N revocations", Cost: "cpu-ms/op", Judged: true},
	// A CRL holds every revocation, so making one grows with them.
	{Section: "ca-scale", Base: "ScaleCRL", SizeKey: "revocations", What: "CRL generation with N revocations", Cost: "crl-ms"},
	// Restart reads the store; its time and the RSS are written down.
	{Section: "ca-scale", Base: "ScaleCAStore", SizeKey: "certs", What: "store restart with N certificates", Cost: "restart-ms"},
	{Section: "agent", Base: "ScaleAgentVend", SizeKey: "jobs", What: "agent vend with N distinct jobs", Judged: true},
}
