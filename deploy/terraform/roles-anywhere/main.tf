# IAM Roles Anywhere for runners whose certificates come from a keyless CA:
# one trust anchor holding the CA's bundle, and per role an IAM role whose
# trust policy admits only that anchor and only the certificate names given,
# with a profile of its own. See README.md.

locals {
  # Exactly one of the two is set (checked by the trust anchor's
  # precondition, since variables cannot see each other before 1.9).
  ca_bundle = var.ca_bundle_pem != null ? var.ca_bundle_pem : (
    var.ca_bundle_path != null ? file(var.ca_bundle_path) : null
  )

  # One condition key per certificate field that a role restricts; an
  # empty list adds no key. Roles Anywhere tags a session with the
  # certificate's subject attributes and its first DNS and URI SAN.
  role_conditions = {
    for name, r in var.roles : name => {
      for key, values in {
        "aws:PrincipalTag/x509Subject/CN" = r.allowed_cn
        "aws:PrincipalTag/x509Subject/OU" = r.allowed_ou
        "aws:PrincipalTag/x509SAN/DNS"    = r.allowed_san_dns
        "aws:PrincipalTag/x509SAN/URI"    = r.allowed_san_uri
      } : key => distinct(values) if length(values) > 0
    }
  }

  policy_attachments = merge([
    for name, r in var.roles : {
      for arn in distinct(r.policy_arns) : "${name}|${arn}" => { role = name, policy_arn = arn }
    }
  ]...)

  inline_policies = merge([
    for name, r in var.roles : {
      for policy, doc in r.inline_policies : "${name}|${policy}" => { role = name, name = policy, policy = doc }
    }
  ]...)
}

resource "aws_rolesanywhere_trust_anchor" "this" {
  name    = var.trust_anchor_name
  enabled = var.trust_anchor_enabled

  source {
    source_type = "CERTIFICATE_BUNDLE"
    source_data {
      x509_certificate_data = local.ca_bundle
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = (var.ca_bundle_path == null) != (var.ca_bundle_pem == null)
      error_message = "Give the CA bundle as exactly one of ca_bundle_path (a file from `keyless ca bundle > bundle.pem`) or ca_bundle_pem."
    }
    precondition {
      condition = local.ca_bundle == null ? true : (
        can(regex("^\\s*-----BEGIN CERTIFICATE-----", local.ca_bundle)) &&
        strcontains(local.ca_bundle, "-----END CERTIFICATE-----") &&
        length(regexall("-----BEGIN CERTIFICATE-----", local.ca_bundle)) <= 2 &&
        length(trimspace(local.ca_bundle)) <= 204800
      )
      error_message = "The CA bundle must be PEM certificates as `keyless ca bundle` prints them (starting with -----BEGIN CERTIFICATE-----): at most 2 certificates and 204800 characters (Roles Anywhere's limits)."
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = var.roles

  name                 = each.key
  path                 = each.value.path
  description          = each.value.description
  permissions_boundary = each.value.permissions_boundary
  # IAM allows 1-12 hours for a role; below one hour is not allowed even
  # when the profile's sessions are shorter.
  max_session_duration = coalesce(each.value.max_session_duration, max(3600, each.value.session_duration_seconds))

  # Only Roles Anywhere may assume the role, only through this trust
  # anchor (without aws:SourceArn, any trust anchor in the account whose
  # CA issues a matching CN could), and only for the names given.
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "KeylessRunnersThroughRolesAnywhere"
      Effect    = "Allow"
      Principal = { Service = "rolesanywhere.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
      Condition = {
        ArnEquals    = { "aws:SourceArn" = aws_rolesanywhere_trust_anchor.this.arn }
        StringEquals = local.role_conditions[each.key]
      }
    }]
  })

  tags = merge(var.tags, each.value.tags)
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = local.policy_attachments

  role       = aws_iam_role.this[each.value.role].name
  policy_arn = each.value.policy_arn
}

resource "aws_iam_role_policy" "this" {
  for_each = local.inline_policies

  role   = aws_iam_role.this[each.value.role].name
  name   = each.value.name
  policy = each.value.policy
}

# One profile per role rather than one shared: a profile's duration,
# session policy and enabled flag then apply to exactly one role, so a
# long-lived read-only role and a short deploy role do not share a
# lifetime, and one role can be switched off without touching the others.
resource "aws_rolesanywhere_profile" "this" {
  for_each = var.roles

  name                        = coalesce(each.value.profile_name, each.key)
  enabled                     = true
  role_arns                   = [aws_iam_role.this[each.key].arn]
  duration_seconds            = each.value.session_duration_seconds
  accept_role_session_name    = each.value.accept_role_session_name
  require_instance_properties = false
  managed_policy_arns         = each.value.profile_managed_policy_arns
  session_policy              = each.value.profile_session_policy

  tags = var.tags
}
