// Package caproto is what a keyless CA and its clients both speak, so
// that neither has to import the other: step's one-time tokens (made on
// the CA host or from a provisioner password) and renewal tokens (signed
// with the certificate's own key), provisioner keys as step stores them
// (a JWE encrypted with the provisioner password), and the API's JSON
// shapes, with the reason codes keyless's CA adds to step's error shape
// so that clients branch on a code, not on a message.
//
// It is a domain package: no HTTP client or server, no store. internal/ca
// and internal/ca/caapi (the CA side) and internal/caclient (the runner
// side) import it.
package caproto
