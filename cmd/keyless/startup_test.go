package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// Every keyless command, a credential-process cache hit included, runs
// the package initialisation of everything linked into the binary before
// main. These tests keep that initialisation cheap by counting, never
// timing: what each non-standard package's init allocates, and which
// expensive calls keyless's own packages make at package level.

// initBudget is what one package's init may allocate.
type initBudget struct {
	allocs, bytes int
	why           string // why this package has more than the default
}

// defaultInitBudget holds for every package not in initBudgets: room
// for a few error values and small tables, not for compiled patterns or
// computed keys (hundreds of allocations, or a millisecond).
var defaultInitBudget = initBudget{allocs: 40, bytes: 8 << 10}

// ownInitBudget holds for keyless's own packages not in initBudgets:
// their package-level values are static tables and constants, or made on
// first use, so their inits allocate next to nothing.
var ownInitBudget = initBudget{allocs: 8, bytes: 2 << 10}

// initBudgets are the packages allowed more, with the reason. Lower a
// budget when its package's init gets cheaper.
var initBudgets = map[string]initBudget{
	"go.yaml.in/yaml/v3": {allocs: 400, bytes: 40 << 10,
		why: "the YAML library compiles two regexps and builds its tag tables in init; keyless cannot make them lazy without forking it"},
	"golang.org/x/sys/cpu": {allocs: 40, bytes: 12 << 10, why: "CPU feature detection (for circl's ML-DSA)"},
}

// TestInitAllocations runs `GODEBUG=inittrace=1 keyless version` and
// holds the init of every package outside the standard library (keyless's
// and its dependencies') to its allocation budget.
func TestInitAllocations(t *testing.T) {
	cmd := exec.Command(testkit.Keyless(t), "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("keyless version: %v\n%s", err, stderr.String())
	}
	inits := parseInitTrace(t, stderr.String())
	if len(inits) < 50 || inits["github.com/keyless-dev/keyless/internal/cli"] == nil {
		t.Fatalf("inittrace listed %d packages, not keyless's; output:\n%s", len(inits), stderr.String())
	}
	total := 0
	for pkg, got := range inits {
		if !strings.Contains(strings.SplitN(pkg, "/", 2)[0], ".") {
			continue // the standard library (and its vendored packages)
		}
		total += got.allocs
		budget, ok := initBudgets[pkg]
		if !ok {
			budget = defaultInitBudget
			if strings.HasPrefix(pkg, "github.com/keyless-dev/keyless/") {
				budget = ownInitBudget
			}
		}
		if got.allocs > budget.allocs || got.bytes > budget.bytes {
			fix := "make the package-level value lazy (sync.OnceValue, or a func that builds it on first use), or a constant or static table"
			if budget.why != "" {
				fix = "its budget says: " + budget.why
			}
			t.Errorf("init of %s allocates %d times, %d bytes; its budget is %d allocations, %d bytes. Every keyless command, a credential-process cache hit too, pays this at start: %s",
				pkg, got.allocs, got.bytes, budget.allocs, budget.bytes, fix)
		}
	}
	t.Logf("non-standard packages' inits: %d allocations in all", total)
}

type initCost struct{ allocs, bytes int }

// parseInitTrace reads lines of the form
//
//	init PKG @0.53 ms, 0.012 ms clock, 1328 bytes, 8 allocs
func parseInitTrace(t *testing.T, out string) map[string]*initCost {
	inits := map[string]*initCost{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 11 || f[0] != "init" || f[8] != "bytes," || f[10] != "allocs" {
			continue
		}
		b, err1 := strconv.Atoi(f[7])
		a, err2 := strconv.Atoi(f[9])
		if err1 != nil || err2 != nil {
			t.Fatalf("unexpected inittrace line %q", sc.Text())
		}
		inits[f[1]] = &initCost{allocs: a, bytes: b}
	}
	return inits
}

// expensiveAtStart are calls that cost far more than they allocate (a
// key's base-point table took a millisecond with one allocation), so the
// allocation budget would not catch them: keyless's packages must not make
// them at package level or in init, where every command pays them.
var expensiveAtStart = map[string][]string{
	"regexp":          {"MustCompile", "Compile", "MustCompilePOSIX", "CompilePOSIX"},
	"crypto/ed25519":  {"NewKeyFromSeed", "GenerateKey"},
	"crypto/ecdsa":    {"GenerateKey", "ParseRawPrivateKey"},
	"crypto/ecdh":     {"GenerateKey"},
	"crypto/rsa":      {"GenerateKey"},
	"crypto/x509":     {"ParseCertificate", "ParseCertificates", "CreateCertificate", "CreateCertificateRequest", "SystemCertPool", "ParsePKCS8PrivateKey"},
	"crypto/elliptic": {"GenerateKey"},
	"encoding/pem":    {"Decode"},
	"text/template":   {"Must", "New"},
	"html/template":   {"Must", "New"},
	"encoding/json":   {"Unmarshal", "Marshal"},
	"github.com/keyless-dev/keyless/internal/mldsa": {"GenerateKey", "NewKeyFromSeed"},
}

// TestNoExpensiveCallsAtStart parses every package linked into keyless
// from this module and refuses package-level variables and init
// functions that call one of expensiveAtStart (inside a function literal
// passed on, as in sync.OnceValue(func() ...), is fine: that runs on
// first use).
func TestNoExpensiveCallsAtStart(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{join .GoFiles " "}}{{end}}`, testkit.KeylessPackage).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || !strings.HasPrefix(f[0], "github.com/keyless-dev/keyless/") {
			continue
		}
		for _, name := range strings.Fields(f[2]) {
			checked++
			for _, finding := range expensiveCalls(t, filepath.Join(f[1], name)) {
				t.Errorf("%s: every keyless command pays for this at start; build it on first use instead (sync.OnceValue, as internal/ca's nameProbeKey)", finding)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("checked only %d files", checked)
	}
}

// expensiveCalls lists the calls to expensiveAtStart in path's
// package-level variable declarations and init functions, outside
// function literals that are not called there and then.
func expensiveCalls(t *testing.T, path string) []string {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]string{} // local name -> import path
	for _, im := range file.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = p
	}
	var found []string
	calledNow := map[*ast.FuncLit]bool{} // func() T { ... }() runs at start too
	visit := func(n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncLit:
				return calledNow[n]
			case *ast.CallExpr:
				if lit, ok := n.Fun.(*ast.FuncLit); ok {
					calledNow[lit] = true
				}
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				for _, fn := range expensiveAtStart[imports[x.Name]] {
					if fn == sel.Sel.Name {
						found = append(found, fmt.Sprintf("%s: %s.%s at package level", fset.Position(n.Pos()), imports[x.Name], fn))
					}
				}
			}
			return true
		})
	}
	for _, d := range file.Decls {
		switch d := d.(type) {
		case *ast.GenDecl:
			if d.Tok == token.VAR {
				visit(d)
			}
		case *ast.FuncDecl:
			if d.Recv == nil && d.Name.Name == "init" {
				visit(d.Body)
			}
		}
	}
	return found
}

func TestMain(m *testing.M) { os.Exit(testkit.Main(m).Run()) }
