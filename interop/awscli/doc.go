// Package awscli holds the interop tests between keyless and the AWS CLI
// (v2, the Debian awscli package): the CLI runs keyless as its
// credential_process, as users configure it. It is a separate module, like
// every peer under interop/, so the main module never depends on a peer.
package awscli
