//go:build linux

package containers_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ciConfig is a .gitlab-ci.yml with its local includes, merged as GitLab
// merges them for the parts the kit uses: include: local, top-level
// variables, extends (in order, hashes merged deeply, anything else
// replaced, the job's own keys last), !reference [job, key] tags, and
// nested script lists flattened.
type ciConfig struct {
	keys map[string]*yaml.Node // top-level key: its value
	// order is the order keys were read, for messages.
	order []string
}

// ciJob is what a job runs.
type ciJob struct {
	BeforeScript, Script []string
	// Variables are the global ones, then the job's, KEY=VALUE.
	Variables []string
	// IDTokens maps each id_tokens variable to its aud.
	IDTokens map[string]string
}

// repoFile is a file of the keyless repository, /-rooted as GitLab's
// include: local is.
func repoFile(name string) string {
	return filepath.Join("..", "..", filepath.FromSlash(strings.TrimPrefix(name, "/")))
}

// loadCI reads deploy/gitlab/NAME and its local includes.
func loadCI(t *testing.T, name string) *ciConfig {
	t.Helper()
	c := &ciConfig{keys: map[string]*yaml.Node{}}
	c.read(t, "/deploy/gitlab/"+name, 0)
	return c
}

func (c *ciConfig) read(t *testing.T, name string, depth int) {
	t.Helper()
	if depth > 5 {
		t.Fatalf("includes nested too deep at %s", name)
	}
	b, err := os.ReadFile(repoFile(name))
	if err != nil {
		t.Fatal(err)
	}
	c.parse(t, name, string(b), depth)
}

func (c *ciConfig) parse(t *testing.T, name, text string, depth int) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("%s: not a mapping", name)
	}
	m := doc.Content[0]
	for i := 0; i < len(m.Content); i += 2 {
		k, v := m.Content[i].Value, m.Content[i+1]
		if k == "include" {
			for _, inc := range seq(v) {
				local := lookup(inc, "local")
				if local == nil {
					t.Fatalf("%s: only include: local is followed here", name)
				}
				c.read(t, local.Value, depth+1)
			}
			continue
		}
		if prev, ok := c.keys[k]; ok && prev.Kind == yaml.MappingNode && v.Kind == yaml.MappingNode {
			v = merge(prev, v) // a later file's keys win, hashes merged
		} else if !ok {
			c.order = append(c.order, k)
		}
		c.keys[k] = v
	}
}

// add defines a job from YAML text, as a project's own .gitlab-ci.yml
// would next to the included template.
func (c *ciConfig) add(t *testing.T, name, text string) {
	t.Helper()
	c.parse(t, "(test)", name+":\n"+indent(text), 0)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// resolved is a job's mapping with its extends applied.
func (c *ciConfig) resolved(t *testing.T, name string, depth int) *yaml.Node {
	t.Helper()
	n, ok := c.keys[name]
	if !ok || n.Kind != yaml.MappingNode {
		t.Fatalf("no job or template %q (have %v)", name, c.order)
	}
	if depth > 11 { // GitLab allows 11 levels
		t.Fatalf("extends nested too deep at %s", name)
	}
	out := &yaml.Node{Kind: yaml.MappingNode}
	if ext := lookup(n, "extends"); ext != nil {
		for _, p := range seq(ext) {
			out = merge(out, c.resolved(t, p.Value, depth+1))
		}
	}
	own := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i < len(n.Content); i += 2 {
		if n.Content[i].Value != "extends" {
			own.Content = append(own.Content, n.Content[i], n.Content[i+1])
		}
	}
	return merge(out, own)
}

// job returns what job name runs.
func (c *ciConfig) job(t *testing.T, name string) ciJob {
	t.Helper()
	n := c.resolved(t, name, 0)
	var j ciJob
	j.BeforeScript = c.lines(t, lookup(n, "before_script"), 0)
	j.Script = c.lines(t, lookup(n, "script"), 0)
	if len(j.Script) == 0 {
		t.Fatalf("job %s has no script", name)
	}
	for _, vars := range []*yaml.Node{c.keys["variables"], lookup(n, "variables")} {
		if vars == nil {
			continue
		}
		for i := 0; i < len(vars.Content); i += 2 {
			v := vars.Content[i+1]
			if v.Kind == yaml.MappingNode {
				v = lookup(v, "value")
			}
			j.Variables = append(j.Variables, vars.Content[i].Value+"="+v.Value)
		}
	}
	if ids := lookup(n, "id_tokens"); ids != nil {
		j.IDTokens = map[string]string{}
		for i := 0; i < len(ids.Content); i += 2 {
			aud := lookup(ids.Content[i+1], "aud")
			if aud == nil || aud.Kind != yaml.ScalarNode {
				t.Fatalf("job %s: id_tokens %s has no aud", name, ids.Content[i].Value)
			}
			j.IDTokens[ids.Content[i].Value] = aud.Value
		}
	}
	return j
}

// lines flattens a script: strings, nested lists, and !reference tags.
func (c *ciConfig) lines(t *testing.T, n *yaml.Node, depth int) []string {
	t.Helper()
	if n == nil {
		return nil
	}
	if depth > 10 { // GitLab flattens 10 levels
		t.Fatalf("a script nested too deep")
	}
	if n.Tag == "!reference" {
		var path []string
		for _, p := range n.Content {
			path = append(path, p.Value)
		}
		if len(path) < 2 {
			t.Fatalf("!reference %v: want [job, key, ...]", path)
		}
		ref := c.resolved(t, path[0], 0)
		for _, k := range path[1:] {
			if ref = lookup(ref, k); ref == nil {
				t.Fatalf("!reference %v: no such key", path)
			}
		}
		return c.lines(t, ref, depth+1)
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{strings.TrimSuffix(n.Value, "\n")}
	case yaml.SequenceNode:
		var out []string
		for _, e := range n.Content {
			out = append(out, c.lines(t, e, depth+1)...)
		}
		return out
	}
	t.Fatalf("line %d: a script is strings or lists of them", n.Line)
	return nil
}

// merge is GitLab's deep merge of two hashes: b's keys win, hashes in
// both are merged, anything else (lists included) is replaced.
func merge(a, b *yaml.Node) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode}
	idx := map[string]int{}
	for i := 0; i < len(a.Content); i += 2 {
		idx[a.Content[i].Value] = len(out.Content)
		out.Content = append(out.Content, a.Content[i], a.Content[i+1])
	}
	for i := 0; i < len(b.Content); i += 2 {
		k, v := b.Content[i], b.Content[i+1]
		j, ok := idx[k.Value]
		switch {
		case !ok:
			idx[k.Value] = len(out.Content)
			out.Content = append(out.Content, k, v)
		case out.Content[j+1].Kind == yaml.MappingNode && v.Kind == yaml.MappingNode && v.Tag != "!reference":
			out.Content[j+1] = merge(out.Content[j+1], v)
		default:
			out.Content[j+1] = v
		}
	}
	return out
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// seq is a node as a list: a scalar is a list of one.
func seq(n *yaml.Node) []*yaml.Node {
	if n.Kind == yaml.SequenceNode {
		return n.Content
	}
	return []*yaml.Node{n}
}

// TestCITemplates needs no Docker: the templates parse, every job of the
// example resolves to lines, and the Terraform template runs keyless's
// before_script first, then Terraform's, as the reference's did.
func TestCITemplates(t *testing.T) {
	ci := loadCI(t, "examples/terraform.gitlab-ci.yml")
	base := ci.job(t, "aws-identity").BeforeScript
	if len(base) != 1 || !strings.Contains(base[0], "AWS_CONTAINER_CREDENTIALS_FULL_URI") {
		t.Fatalf(".keyless_aws's before_script: %q", base)
	}
	for _, forbidden := range []string{"apk ", "apt-get", "curl", "wget", "jq", "gcompat", "aws_signing_helper", "/certs"} {
		if strings.Contains(base[0], forbidden) {
			t.Errorf(".keyless_aws's before_script uses %q", forbidden)
		}
	}
	for _, name := range []string{"plan", "apply"} {
		j := ci.job(t, name)
		want := append(append([]string{}, base...), `cd "$TF_ROOT"`, "terraform init -input=false")
		if fmt.Sprint(j.BeforeScript) != fmt.Sprint(want) {
			t.Errorf("%s's before_script:\n%q\nwant\n%q", name, j.BeforeScript, want)
		}
	}
}
