// Package terraform holds the interop tests between keyless and Terraform
// with HashiCorp's AWS provider: the module in deploy/terraform/roles-anywhere
// is applied, planned, re-planned after an emulator restart and destroyed
// against keyless emulator's control plane, and keyless gets credentials
// through what it created. It is a separate module, like every peer under
// interop/, so the main module never depends on a peer.
//
// The provider is a 1.27 GB binary built from source
// (scripts/terraform-provider builds it once into a cache directory);
// KEYLESS_TERRAFORM_PROVIDER_AWS names it, else the test looks in that
// cache. Without it, or without terraform on PATH, the tests skip, and
// fail under KEYLESS_INTEROP=require.
package terraform
