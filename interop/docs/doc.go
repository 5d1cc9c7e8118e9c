// Package docs checks that every command block in keyless's README and
// docs/ runs as written. It extracts the fenced ```sh, ```bash, ```shell
// and ```console blocks of each document, in order, and runs them in one
// bash session per document (bash -euo pipefail, so a later block sees the
// files and variables of earlier ones, as a reader's shell would), each
// document in a container of its own, because the blocks write to /etc,
// add users and start services.
//
// A block is left out only when the HTML comment on the line before its
// fence says why, in one of the forms Parse accepts: it needs real AWS,
// a real GitLab, it is macOS only, or it is a measurement run by hand
// (scripts/bench; for these two its shell syntax is checked).
// Other forms say how to run a block (see Directive);
// anything else is an error, so a typo cannot skip a block.
//
// It is a separate module, like every peer under interop/: its peer is
// Docker (and the tools the documents call, from the host's /usr).
package docs
