// Package awshelper holds the interop tests between keyless and AWS's own
// credential helper, github.com/aws/rolesanywhere-credential-helper v1.4.0,
// used as a library and built as a binary. It is a separate module so that
// the helper's cgo (PKCS#11) and AWS SDK v1 dependencies never reach the
// keyless binary, and so its go-tpm version cannot clash with smallstep's.
package awshelper
