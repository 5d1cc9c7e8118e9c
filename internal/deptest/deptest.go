// Package deptest checks a Go module's packages against architecture
// rules, in the spirit of tailscale's tstest/deptest: every package has a
// layer, and a package may import only its own layer and those below;
// some imports are allowed only in named packages; some packages must not
// link certain modules at all (in their whole dependency closure); some
// identifiers (an HTTP client, a listener, the wall clock) must not be
// used in some layers; and test helpers are imported by tests only.
//
// It reads the module with `go list` and its sources with go/parser, so
// it checks what the build sees. Only tests import it: keyless's rules
// are in deps_test.go, next to a test that runs them on a fixture with
// forbidden imports and expects each one reported.
package deptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Rules describe a module's architecture.
type Rules struct {
	// Layers are the layer names, lowest first. A package may import
	// packages of its own layer and of lower ones.
	Layers []string
	// Packages gives each of the module's packages (by path relative to
	// the module, "internal/cli"; "." for the root) its layer. A package
	// the module has but Packages does not name is a violation, so a new
	// package cannot slip in unjudged.
	Packages map[string]string
	// OnlyIn allows an import (an import path, or a prefix ending in "/")
	// only in the packages listed (relative paths).
	OnlyIn map[string][]string
	// NoLink forbids import path prefixes in the whole dependency closure
	// of some packages.
	NoLink []NoLink
	// Forbid forbids using identifiers in the non-test files of packages
	// of some layers.
	Forbid []Forbid
	// TestOnly packages may be imported by tests, and by each other,
	// only.
	TestOnly []string
}

// NoLink is a dependency closure rule.
type NoLink struct {
	Packages []string // relative paths
	Prefixes []string // import path prefixes
	Why      string
}

// Forbid is a code rule: Uses are "importpath.Name" identifiers.
type Forbid struct {
	Layers []string
	Uses   []string
	Why    string
}

// Violation is one broken rule.
type Violation struct {
	Package string // relative path
	Rule    string
	Detail  string
}

func (v Violation) String() string { return v.Package + ": " + v.Rule + ": " + v.Detail }

type listed struct {
	ImportPath string
	Dir        string
	Module     *struct{ Path string }
	Standard   bool
	GoFiles    []string
	// IgnoredGoFiles are excluded by build constraints here: files for
	// other systems, which the rules cover too.
	IgnoredGoFiles []string
	Imports        []string
	TestImports    []string
	XTestImports   []string
	DepOnly        bool
}

// Check loads the module in dir and returns every violation of r, in a
// stable order.
func Check(dir string, r Rules) ([]Violation, error) {
	pkgs, module, err := load(dir)
	if err != nil {
		return nil, err
	}
	rel := func(p string) string {
		if p == module {
			return "."
		}
		return strings.TrimPrefix(p, module+"/")
	}
	ours := func(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }
	rank := map[string]int{}
	for i, l := range r.Layers {
		rank[l] = i
	}
	var out []Violation
	add := func(pkg, rule, format string, args ...any) {
		out = append(out, Violation{Package: pkg, Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}
	for name, layer := range r.Packages {
		if _, ok := rank[layer]; !ok {
			add(name, "layers", "layer %q is not one of %v", layer, r.Layers)
		}
	}
	testOnly := map[string]bool{}
	for _, p := range r.TestOnly {
		testOnly[p] = true
	}
	for _, p := range pkgs {
		// A package of the module that ./... does not list (under
		// testdata, say) is judged all the same: it is linked.
		if !ours(p.ImportPath) {
			continue
		}
		name := rel(p.ImportPath)
		layer, ok := r.Packages[name]
		if !ok {
			add(name, "unjudged", "the package has no layer; add it to the rules with one")
			continue
		}
		extra, err := importsOf(p, p.IgnoredGoFiles)
		if err != nil {
			return nil, err
		}
		for _, imp := range append(slices.Clone(p.Imports), extra...) {
			if ours(imp) {
				target := rel(imp)
				if testOnly[target] && !testOnly[name] {
					add(name, "test-only", "imports %s, which only tests may import", target)
				}
				if tl, ok := r.Packages[target]; ok && rank[tl] > rank[layer] {
					add(name, "layering", "a %s package imports %s, a %s package", layer, target, tl)
				}
			}
			for prefix, allowed := range r.OnlyIn {
				if matches(imp, prefix) && !slices.Contains(allowed, name) {
					add(name, "only-in", "imports %s, which only %s may import", imp, strings.Join(allowed, ", "))
				}
			}
		}
		for _, f := range r.Forbid {
			if !slices.Contains(f.Layers, layer) {
				continue
			}
			uses, err := usesIn(p, f.Uses)
			if err != nil {
				return nil, err
			}
			for _, u := range uses {
				if u.name == "" {
					add(name, "dot import", "%s dot-imports %s, which hides its uses from these rules", u.pos, u.dot)
					continue
				}
				add(name, "forbidden use", "%s uses %s (%s)", u.pos, u.name, f.Why)
			}
		}
	}
	byPath := map[string]*listed{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	for _, nl := range r.NoLink {
		for _, name := range nl.Packages {
			path := module + "/" + name
			if name == "." {
				path = module
			}
			if byPath[path] == nil {
				add(name, "no-link", "no such package in the module")
				continue
			}
			deps := closure(byPath, path)
			for _, prefix := range nl.Prefixes {
				var linked []string
				for _, dep := range deps {
					if matches(dep, prefix) {
						linked = append(linked, dep)
					}
				}
				if len(linked) > 0 {
					add(name, "no-link", "links %s (%s)", strings.Join(linked, ", "), nl.Why)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func matches(imp, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(imp, prefix)
	}
	return imp == prefix || strings.HasPrefix(imp, prefix+"/")
}

// load lists the module's packages and their whole dependency closure, as
// a static build (CGO_ENABLED=0) sees them.
func load(dir string) ([]*listed, string, error) {
	cmd := exec.Command("go", "list", "-deps", "-test=false", "-json=ImportPath,Dir,Module,Standard,GoFiles,IgnoredGoFiles,Imports,TestImports,XTestImports,DepOnly", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("go list in %s: %v\n%s", dir, err, stderr.String())
	}
	var pkgs []*listed
	module := ""
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		p := new(listed)
		if err := dec.Decode(p); err != nil {
			return nil, "", err
		}
		if !p.DepOnly && p.Module != nil && module == "" {
			module = p.Module.Path
		}
		pkgs = append(pkgs, p)
	}
	if module == "" {
		return nil, "", fmt.Errorf("go list in %s: no packages of a module", dir)
	}
	return pkgs, module, nil
}

// closure returns every package path root depends on, root excluded.
func closure(byPath map[string]*listed, root string) []string {
	seen := map[string]bool{root: true}
	queue := []string{root}
	var out []string
	for len(queue) > 0 {
		p := byPath[queue[0]]
		queue = queue[1:]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if !seen[imp] {
				seen[imp] = true
				out = append(out, imp)
				queue = append(queue, imp)
			}
		}
	}
	sort.Strings(out)
	return out
}

type use struct{ pos, name, dot string }

// importsOf reads the import paths of files (of p's directory).
func importsOf(p *listed, files []string) ([]string, error) {
	var out []string
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, file), nil, parser.ImportsOnly)
		if err != nil {
			return nil, err
		}
		for _, is := range f.Imports {
			ip, _ := strconv.Unquote(is.Path.Value)
			out = append(out, ip)
		}
	}
	return out, nil
}

// usesIn finds references to the identifiers (importpath.Name) in a
// package's non-test files, for every system, whatever name a file
// imports the package under; a dot import is reported as such (dot set,
// name empty), since its uses cannot be told from local names.
func usesIn(p *listed, idents []string) ([]use, error) {
	var out []use
	fset := token.NewFileSet()
	for _, file := range append(slices.Clone(p.GoFiles), p.IgnoredGoFiles...) {
		path := filepath.Join(p.Dir, file)
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		local := map[string]string{} // the name a file uses -> import path
		for _, is := range f.Imports {
			ip, _ := strconv.Unquote(is.Path.Value)
			name := defaultName(ip)
			if is.Name != nil {
				name = is.Name.Name
			}
			if name == "." {
				for _, id := range idents {
					if strings.HasPrefix(id, ip+".") {
						pos := fset.Position(is.Pos())
						out = append(out, use{pos: fmt.Sprintf("%s:%d", filepath.Base(pos.Filename), pos.Line), dot: ip})
						break
					}
				}
				continue
			}
			local[name] = ip
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok || local[x.Name] == "" {
				return true
			}
			full := local[x.Name] + "." + sel.Sel.Name
			if slices.Contains(idents, full) {
				pos := fset.Position(sel.Pos())
				out = append(out, use{pos: fmt.Sprintf("%s:%d", filepath.Base(pos.Filename), pos.Line), name: full})
			}
			return true
		})
	}
	return out, nil
}

// defaultName is the name a package is imported under without a rename:
// the last path element, without a major version (".../v2", "yaml.v3")
// or a "go-" prefix. (The package clause decides in the end; this is
// right for the standard library and the modules keyless uses.)
func defaultName(importPath string) string {
	parts := strings.Split(importPath, "/")
	last := parts[len(parts)-1]
	if len(parts) > 1 && isMajor(last) {
		last = parts[len(parts)-2]
	}
	if i := strings.LastIndex(last, "."); i > 0 && isMajor(last[i+1:]) {
		last = last[:i]
	}
	return strings.TrimPrefix(last, "go-")
}

func isMajor(s string) bool {
	return len(s) > 1 && s[0] == 'v' && strings.Trim(s[1:], "0123456789") == ""
}
