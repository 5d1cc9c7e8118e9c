locals {
  endpoint_flag = var.rolesanywhere_endpoint == null ? "" : " --endpoint ${var.rolesanywhere_endpoint}"

  agent_rules = [
    for name, r in var.roles : merge(
      {
        # Rule names allow fewer characters than role names.
        name       = replace(name, "/[^A-Za-z0-9._-]/", "-")
        identity   = r.agent.identity
        match      = r.agent.match
        roleArn    = aws_iam_role.this[name].arn
        profileArn = aws_rolesanywhere_profile.this[name].arn
      },
      r.agent.duration == null ? {} : { duration = r.agent.duration },
      r.agent.session_name == null ? {} : { sessionName = r.agent.session_name },
    ) if r.agent != null
  ]
}

output "trust_anchor_arn" {
  description = "ARN of the trust anchor (the reference's trust_anchor_arn)."
  value       = aws_rolesanywhere_trust_anchor.this.arn
}

output "trust_anchor_id" {
  description = "ID of the trust anchor."
  value       = aws_rolesanywhere_trust_anchor.this.id
}

output "role_arns" {
  description = "Role name => IAM role ARN."
  value       = { for name, r in aws_iam_role.this : name => r.arn }
}

output "profile_arns" {
  description = "Role name => the ARN of its Roles Anywhere profile."
  value       = { for name, p in aws_rolesanywhere_profile.this : name => p.arn }
}

output "role_arn" {
  description = "The role's ARN when there is exactly one role (the reference's role_arn), else null."
  value       = length(var.roles) == 1 ? one(values(aws_iam_role.this)).arn : null
}

output "profile_arn" {
  description = "The profile's ARN when there is exactly one role (the reference's profile_arn), else null."
  value       = length(var.roles) == 1 ? one(values(aws_rolesanywhere_profile.this)).arn : null
}

output "credential_process" {
  description = "Role name => a credential_process line for ~/.aws/config (keyless credential-process, or AWS's aws_signing_helper with the same flags)."
  value = {
    for name in keys(var.roles) : name => join(" ", [
      "${var.keyless_path} credential-process",
      "--certificate ${var.runner_certificate_path}",
      "--private-key ${var.runner_key_path}",
      "--trust-anchor-arn ${aws_rolesanywhere_trust_anchor.this.arn}",
      "--profile-arn ${aws_rolesanywhere_profile.this[name].arn}",
      "--role-arn ${aws_iam_role.this[name].arn}${local.endpoint_flag}",
    ])
  }
}

output "agent_config" {
  description = "The aws and rules sections of keyless agent's config (agent.yaml) for the roles that have an agent rule; add identity, gitlab and listen (docs/agent.md)."
  value = join("", [
    "# From deploy/terraform/roles-anywhere: add identity, gitlab and listen (docs/agent.md).\n",
    yamlencode(merge(
      {
        aws = merge(
          { trustAnchorArn = aws_rolesanywhere_trust_anchor.this.arn },
          var.rolesanywhere_endpoint == null ? {} : { endpoint = var.rolesanywhere_endpoint },
        )
      },
      length(local.agent_rules) == 0 ? {} : { rules = local.agent_rules },
    )),
  ])
}

output "crl_import_command" {
  description = "How to import the CA's CRL into this trust anchor (the AWS provider has no CRL resource; see README.md)."
  value = join(" ", [
    "keyless ca crl --out ca.crl &&",
    "aws rolesanywhere import-crl --name '${var.crl_name}' --crl-data fileb://ca.crl",
    "--trust-anchor-arn ${aws_rolesanywhere_trust_anchor.this.arn} --enabled",
    # The trust anchor's region, whatever the caller's AWS CLI defaults to.
    "--region ${split(":", aws_rolesanywhere_trust_anchor.this.arn)[3]}",
    var.rolesanywhere_endpoint == null ? "" : "--endpoint-url ${var.rolesanywhere_endpoint}",
  ])
}
