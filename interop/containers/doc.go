// Package containers holds the interop tests between keyless agent and
// real job containers: Docker containers started as GitLab Runner's
// Docker executor starts them (the harness in harness_test.go says which
// of its behaviours it reproduces), in which Debian's AWS CLI v2, boto3
// and a static AWS SDK for Go v2 client (cmd/sdkclient) get their
// credentials from the agent on the host at 169.254.170.2 and
// 169.254.170.23, with the job's token, and call the emulator's STS. No
// image is pulled: the images are built from this machine's files. The
// GitLab kit is tested the same way (kit_test.go, ci_test.go): the
// runner's keys are keyless agent print-runner-config's output, parsed as
// TOML, and the jobs run deploy/gitlab's template lines. It is
// a separate module, like every peer under interop/, and Linux only.
package containers
