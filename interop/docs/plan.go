package docs

import (
	"fmt"
	"slices"
	"strings"
)

// StepKind is what a session does with a block.
type StepKind int

// The kinds of step.
const (
	// Run runs the block in the session's shell.
	Run StepKind = iota
	// RunInterrupt runs it until it prints its text, then sends Ctrl-C.
	RunInterrupt
	// Write saves the block as the file its directive names.
	Write
	// Skip leaves it out: it needs real AWS or a real GitLab.
	Skip
	// Self leaves it out: it is the command that runs this test.
	Self
)

// SelfCommand is the README's command for running every test. It runs
// this test too, so the test cannot run it.
const SelfCommand = "scripts/test"

// SelfReason says why a block holding only SelfCommand is not run.
const SelfReason = "it runs every interop module, this one included, so run from here it would start this test " +
	"again; it runs as written wherever the tests run (CI: .ci/run), and this test checks that it exists, " +
	"is executable and runs interop/*/"

// Step is one thing a session does.
type Step struct {
	Kind  StepKind
	Block Block
	// Via is the block whose "after" brought this document's blocks into
	// the session, and "" for the session's own document.
	Via string
	// Why is the reason a Skip or Self step is not run.
	Why string
}

// Label names the step in reports: FILE:LINE, and the block that brought
// it in.
func (s Step) Label() string {
	if s.Via != "" {
		return s.Block.Where() + " (after, for " + s.Via + ")"
	}
	return s.Block.Where()
}

// Plan returns the steps of doc's session: doc's files, then its command
// blocks in order, with the blocks of each document an "after" names run
// once, just before the block that names it. docs holds every document's
// blocks. It refuses an "after" naming an unknown document or closing a
// cycle, and a command block that runs scripts/test among other commands.
func Plan(docs map[string][]Block, doc string) ([]Step, error) {
	var (
		steps []Step
		done  = map[string]bool{}
	)
	var add func(name, via string, stack []string) error
	add = func(name, via string, stack []string) error {
		blocks, ok := docs[name]
		if !ok {
			return fmt.Errorf("%s: after %s: no such document", via, name)
		}
		done[name] = true
		stack = append(stack, name)
		for _, b := range blocks {
			if b.Directive.Kind == File {
				steps = append(steps, Step{Kind: Write, Block: b, Via: via})
			}
		}
		for _, b := range blocks {
			if !b.Command() {
				continue
			}
			d := b.Directive
			if d.Kind == After {
				if slices.Contains(stack, d.Arg) {
					return fmt.Errorf("%s: after %s: a cycle (%s)", b.Where(), d.Arg, strings.Join(append(stack, d.Arg), " → "))
				}
				if !done[d.Arg] {
					if err := add(d.Arg, b.Where(), stack); err != nil {
						return err
					}
				}
			}
			script := strings.TrimSpace(b.Script())
			switch {
			case d.SkipReason() != "":
				steps = append(steps, Step{Kind: Skip, Block: b, Via: via, Why: d.SkipReason()})
			case script == SelfCommand:
				steps = append(steps, Step{Kind: Self, Block: b, Via: via, Why: SelfReason})
			case strings.Contains(script, SelfCommand):
				return fmt.Errorf("%s: runs %s among other commands; it runs this test, so give it a block of its own holding only %q", b.Where(), SelfCommand, SelfCommand)
			case d.Kind == Interrupt:
				steps = append(steps, Step{Kind: RunInterrupt, Block: b, Via: via})
			default:
				steps = append(steps, Step{Kind: Run, Block: b, Via: via})
			}
		}
		return nil
	}
	if err := add(doc, "", nil); err != nil {
		return nil, err
	}
	return steps, nil
}
