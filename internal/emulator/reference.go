package emulator

import (
	"fmt"
	"strings"
)

// Reference describes the reference deployment (one trust anchor, one
// role trusting certificates with one common name from it, one profile),
// for seeds that keyless dev and the tests start from.
type Reference struct {
	Account, Region string
	// TrustAnchor, Role and Profile are the resources' names.
	TrustAnchor, Role, Profile string
	// CommonName is the subject CN the role's trust policy accepts.
	CommonName string
	// BundleFile names the trust anchor's CA bundle (relative to the
	// seed); BundlePEM, when set, is the bundle itself instead.
	BundleFile string
	BundlePEM  []byte
	// MaxSessionDuration is the role's, in seconds.
	MaxSessionDuration int
	// DurationSeconds is the profile's.
	DurationSeconds int
	// AcceptRoleSessionName lets callers name their sessions (the
	// agent names them after the job).
	AcceptRoleSessionName bool
}

// TrustPolicy is the reference setup's trust policy for r: principal
// rolesanywhere.amazonaws.com, the three actions Roles Anywhere asks
// for, on condition that the session comes through r's trust anchor for a
// certificate with r's common name.
func (r Reference) TrustPolicy() string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"ArnEquals":{"aws:SourceArn":"${trustAnchors.` + r.TrustAnchor + `.arn}"},
               "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"` + r.CommonName + `"}}}]}`
}

// Seed returns r as a seed file.
func (r Reference) Seed() string {
	indent := func(s string, n int) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+pad)
	}
	bundle := "certificateBundle: " + r.BundleFile
	if r.BundlePEM != nil {
		bundle = "certificateBundlePem: |\n" + indent(string(r.BundlePEM), 6)
	}
	return fmt.Sprintf(`# The reference deployment: one trust anchor, one role, one profile.
account: %q
region: %s
trustAnchors:
  - name: %s
    %s
roles:
  - name: %s
    maxSessionDuration: %d
    assumeRolePolicy: |
%s
profiles:
  - name: %s
    roles: [%s]
    durationSeconds: %d
    acceptRoleSessionName: %t
`, r.Account, r.Region, r.TrustAnchor, bundle, r.Role, r.MaxSessionDuration, indent(r.TrustPolicy(), 6), r.Profile, r.Role, r.DurationSeconds, r.AcceptRoleSessionName)
}
