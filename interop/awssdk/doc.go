// Package awssdk holds the interop tests between keyless and the AWS SDK
// for Go v2: the SDK's STS client against keyless's emulator, the SDK's
// own SigV4 signer against the emulator's verifier, keyless's signer
// (internal/sigv4) against the SDK's, byte for byte, and a whole Roles
// Anywhere setup made only through the SDK's Roles Anywhere and IAM
// clients (sdksetup), then used by keyless credential-process, with
// every control-plane answer checked against AWS's service models
// (awsmodel, cptest; run scripts/aws-models once to fetch them). It is a
// separate module, like every peer under interop/, so the SDK never
// reaches the keyless binary or the main module's dependencies.
package awssdk
