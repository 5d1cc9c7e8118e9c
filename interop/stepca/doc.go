// Package stepca holds the interop tests between keyless's CA (`keyless ca
// serve`) and smallstep's own Go client, github.com/smallstep/certificates/ca
// v0.30.2: bootstrap by fingerprint, sign with a token made from the
// provisioner password, renew over mTLS and with an x5c token, revoke. It is
// a separate module, like every peer under interop/, so the main module never
// depends on smallstep, and so smallstep's go-tpm v0.9.x cannot clash with
// the version AWS's helper needs in interop/awshelper.
package stepca
