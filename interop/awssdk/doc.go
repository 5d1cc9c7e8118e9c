// Package awssdk holds the interop tests between keyless and the AWS SDK
// for Go v2: the SDK's STS client against keyless's emulator, the SDK's
// own SigV4 signer against the emulator's verifier, and keyless's signer
// (internal/sigv4) against the SDK's, byte for byte. It is a separate
// module, like every peer under interop/, so the SDK never reaches the
// keyless binary or the main module's dependencies.
package awssdk
