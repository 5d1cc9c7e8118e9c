package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/keyless-dev/keyless/internal/cli"
)

// Completion scripts GenerateDocs writes below <dir>/completions, by
// shell. The names are what each shell looks for in its vendor
// directory (bash: the command's name; zsh: _command; fish:
// command.fish).
const (
	BashCompletion = "keyless.bash"
	ZshCompletion  = "_keyless"
	FishCompletion = "keyless.fish"
)

// GenerateDocs writes keyless's man pages (section 1, one per command,
// gzipped) to dir/man/man1 and its bash, zsh and fish completion scripts
// to dir/completions, from the command tree (cli.CommandTree), replacing
// what those two directories held. The output depends only on the
// source and p: pages are dated p.Epoch, name "keyless <version>" as
// their source, and are compressed with no name and no time in the gzip
// header; every file's modification time is p.Epoch.
func GenerateDocs(ctx context.Context, p Plan, dir string) error {
	manDir := filepath.Join(dir, "man", "man1")
	compDir := filepath.Join(dir, "completions")
	for _, d := range []string{filepath.Join(dir, "man"), compDir} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("docs: %w", err)
		}
	}
	for _, d := range []string{manDir, compDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("docs: %w", err)
		}
	}
	epoch := p.Epoch.UTC()
	root := cli.CommandTree()

	var pages []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			return
		}
		pages = append(pages, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, c := range pages {
		if err := ctx.Err(); err != nil {
			return err
		}
		header := &doc.GenManHeader{
			Section: "1",
			Date:    &epoch,
			Source:  "keyless " + p.Version,
			Manual:  "keyless manual",
		}
		var page bytes.Buffer
		if err := doc.GenMan(c, header, &page); err != nil {
			return fmt.Errorf("man page of %s: %w", c.CommandPath(), err)
		}
		gz, err := gzipped(page.Bytes())
		if err != nil {
			return fmt.Errorf("man page of %s: %w", c.CommandPath(), err)
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1.gz"
		if err := writeDated(filepath.Join(manDir, name), gz, epoch); err != nil {
			return err
		}
	}

	for _, s := range []struct {
		name string
		gen  func(*bytes.Buffer) error
	}{
		{BashCompletion, func(b *bytes.Buffer) error { return root.GenBashCompletionV2(b, true) }},
		{ZshCompletion, func(b *bytes.Buffer) error { return root.GenZshCompletion(b) }},
		{FishCompletion, func(b *bytes.Buffer) error { return root.GenFishCompletion(b, true) }},
	} {
		var b bytes.Buffer
		if err := s.gen(&b); err != nil {
			return fmt.Errorf("completion %s: %w", s.name, err)
		}
		if err := writeDated(filepath.Join(compDir, s.name), b.Bytes(), epoch); err != nil {
			return err
		}
	}
	for _, d := range []string{manDir, filepath.Join(dir, "man"), compDir} {
		if err := os.Chtimes(d, epoch, epoch); err != nil {
			return fmt.Errorf("docs: %w", err)
		}
	}
	return nil
}

// gzipped compresses b reproducibly: no file name, no modification time
// (zero), the same level every time (so the OS byte is Go's "unknown").
func gzipped(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// writeDated writes b to path (0644) with modification time t.
func writeDated(path string, b []byte, t time.Time) error {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("docs: %w", err)
	}
	if err := os.Chtimes(path, t, t); err != nil {
		return fmt.Errorf("docs: %w", err)
	}
	return nil
}
