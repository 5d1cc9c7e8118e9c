// Package stepca holds the interop tests between keyless and smallstep's
// step-ca v0.30.2, in both directions. keyless's CA (`keyless ca serve`) is
// driven by smallstep's own Go client, github.com/smallstep/certificates/ca:
// bootstrap by fingerprint, sign with a token made from the provisioner
// password, renew over mTLS and with an x5c token, revoke. keyless's client
// commands (bootstrap, certificate, renew, revoke) are run against a real
// step-ca started in the test process (JWK provisioner, bbolt database) and,
// with the same test bodies, against `keyless ca serve`. It is a separate
// module, like every peer under interop/, so the main module never depends
// on smallstep, and so smallstep's go-tpm v0.9.x cannot clash with the
// version AWS's helper needs in interop/awshelper.
package stepca
