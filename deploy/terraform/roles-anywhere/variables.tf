# The trust anchor ---------------------------------------------------------

variable "trust_anchor_name" {
  description = "Name of the Roles Anywhere trust anchor (1-255 of A-Z a-z 0-9 space _ -)."
  type        = string
  default     = "keyless-runner-ca"

  validation {
    condition     = can(regex("^[ a-zA-Z0-9_-]{1,255}$", var.trust_anchor_name))
    error_message = "trust_anchor_name must be 1 to 255 of A-Z a-z 0-9 space _ - (Roles Anywhere's ResourceName)."
  }
}

variable "ca_bundle_path" {
  description = "Path of the CA bundle written by `keyless ca bundle > bundle.pem` (root and intermediates, PEM). Give this or ca_bundle_pem."
  type        = string
  default     = null
}

variable "ca_bundle_pem" {
  description = "The CA bundle itself, as `keyless ca bundle` prints it (PEM). Give this or ca_bundle_path."
  type        = string
  default     = null

  validation {
    # Roles Anywhere takes at most 2 certificates per trust anchor (a quota
    # that cannot be raised) and at most 204,800 characters of
    # x509CertificateData: a root and one intermediate, as `keyless ca
    # bundle` prints them.
    condition = var.ca_bundle_pem == null ? true : (
      can(regex("^\\s*-----BEGIN CERTIFICATE-----", var.ca_bundle_pem)) &&
      strcontains(var.ca_bundle_pem, "-----END CERTIFICATE-----") &&
      length(regexall("-----BEGIN CERTIFICATE-----", var.ca_bundle_pem)) <= 2 &&
      length(trimspace(var.ca_bundle_pem)) <= 204800
    )
    error_message = "ca_bundle_pem must be PEM certificates as `keyless ca bundle` prints them (starting with -----BEGIN CERTIFICATE-----): at most 2 certificates and 204800 characters (Roles Anywhere's limits)."
  }
}

variable "trust_anchor_enabled" {
  description = "Whether the trust anchor accepts sessions. Set false to stop every role at once (a kill switch that keeps the setup)."
  type        = bool
  default     = true
}

# The roles ----------------------------------------------------------------

variable "roles" {
  description = <<-EOT
    The IAM roles runners may assume, keyed by IAM role name. Each gets a
    trust policy that admits a session only through this module's trust
    anchor (aws:SourceArn) and only for certificates whose subject and SANs
    match its conditions (every condition given must hold; within one, any
    listed value), and a Roles Anywhere profile of its own.

      allowed_cn               certificate subject CNs (required, at least one)
      allowed_ou               subject OUs (optional)
      allowed_san_dns          the first DNS SAN (optional; Roles Anywhere tags only the first)
      allowed_san_uri          the first URI SAN (optional; likewise)
      session_duration_seconds credentials' lifetime from the profile, 900-43200 (default 3600)
      max_session_duration     the role's maximum, 3600-43200 (default: the larger of 3600 and the session duration)
      accept_role_session_name let callers name sessions (default true: the agent names each one after its job)
      policy_arns              managed policies attached to the role
      inline_policies          inline role policies, name => JSON document
      profile_name             the profile's name (default: the role name)
      profile_managed_policy_arns, profile_session_policy
                               limit what sessions through the profile may do (optional)
      description, path, permissions_boundary, tags
                               passed to the role
      agent                    a rule for `keyless agent`'s config fragment (optional):
                               identity (default ["gitlab-job-token"]), match (claim => values),
                               duration (such as "1h"), session_name (a template with {job_id})
  EOT
  type = map(object({
    allowed_cn                  = list(string)
    allowed_ou                  = optional(list(string), [])
    allowed_san_dns             = optional(list(string), [])
    allowed_san_uri             = optional(list(string), [])
    session_duration_seconds    = optional(number, 3600)
    max_session_duration        = optional(number)
    accept_role_session_name    = optional(bool, true)
    policy_arns                 = optional(list(string), [])
    inline_policies             = optional(map(string), {})
    profile_name                = optional(string)
    profile_managed_policy_arns = optional(list(string), [])
    profile_session_policy      = optional(string)
    description                 = optional(string)
    path                        = optional(string, "/")
    permissions_boundary        = optional(string)
    tags                        = optional(map(string), {})
    agent = optional(object({
      identity     = optional(list(string), ["gitlab-job-token"])
      match        = map(list(string))
      duration     = optional(string)
      session_name = optional(string)
    }))
  }))

  validation {
    condition     = length(var.roles) > 0
    error_message = "roles needs at least one role: the trust anchor alone gives nobody credentials."
  }

  validation {
    condition     = alltrue([for name, r in var.roles : can(regex("^[\\w+=,.@-]{1,64}$", name))])
    error_message = "Each key of roles is an IAM role name: 1 to 64 of A-Z a-z 0-9 + = , . @ _ -."
  }

  validation {
    # A role that trusts every CN trusts every certificate the CA issues.
    condition = alltrue([for r in var.roles : length(r.allowed_cn) > 0 && alltrue([
      for cn in r.allowed_cn : length(trimspace(cn)) > 0 && cn == trimspace(cn)
    ])])
    error_message = "Each role needs allowed_cn: at least one non-empty certificate CN without surrounding spaces (a role without one would trust every certificate of the CA)."
  }

  validation {
    condition = alltrue([for r in var.roles : alltrue([
      for v in concat(r.allowed_ou, r.allowed_san_dns, r.allowed_san_uri) : length(trimspace(v)) > 0
    ])])
    error_message = "allowed_ou, allowed_san_dns and allowed_san_uri must not hold empty values: leave the list empty to skip the condition."
  }

  validation {
    condition = alltrue([for r in var.roles :
      floor(r.session_duration_seconds) == r.session_duration_seconds &&
      r.session_duration_seconds >= 900 && r.session_duration_seconds <= 43200
    ])
    error_message = "session_duration_seconds must be whole seconds from 900 (15 minutes) to 43200 (12 hours), Roles Anywhere's range."
  }

  validation {
    condition = alltrue([for r in var.roles : r.max_session_duration == null ? true : (
      floor(r.max_session_duration) == r.max_session_duration &&
      r.max_session_duration >= 3600 && r.max_session_duration <= 43200
    )])
    error_message = "max_session_duration must be whole seconds from 3600 to 43200, IAM's range for a role."
  }

  validation {
    # A profile that hands out longer sessions than the role allows gets
    # every CreateSession refused.
    condition = alltrue([for r in var.roles :
      r.max_session_duration == null ? true : r.max_session_duration >= r.session_duration_seconds
    ])
    error_message = "A role's max_session_duration must be at least its session_duration_seconds, or every session through its profile is refused."
  }

  validation {
    condition = alltrue([for r in var.roles : alltrue([
      for arn in concat(r.policy_arns, r.profile_managed_policy_arns) : can(regex("^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/.+$", arn))
    ])])
    error_message = "policy_arns and profile_managed_policy_arns hold managed policy ARNs such as arn:aws:iam::aws:policy/ReadOnlyAccess."
  }

  validation {
    # Roles Anywhere hands a profile's managed policies to STS, which
    # gives a session at most 10; a profile with more gets every
    # CreateSession refused.
    condition     = alltrue([for r in var.roles : length(r.profile_managed_policy_arns) <= 10])
    error_message = "profile_managed_policy_arns holds at most 10 ARNs: STS applies at most 10 managed session policies to a session."
  }

  validation {
    # STS takes at most 2,048 characters of session policy plain text,
    # the inline policy and the managed policy ARNs together.
    condition = alltrue([for r in var.roles : r.profile_session_policy == null ? true : (
      can(jsondecode(r.profile_session_policy).Statement) &&
      length(r.profile_session_policy) + length(join("", r.profile_managed_policy_arns)) <= 2048
    )])
    error_message = "profile_session_policy must be a JSON policy document with a Statement, at most 2048 characters together with profile_managed_policy_arns (STS's limit on a session's policies)."
  }

  validation {
    condition = alltrue([for r in var.roles : alltrue([
      for name, doc in r.inline_policies : can(regex("^[\\w+=,.@-]{1,128}$", name)) && can(jsondecode(doc).Statement)
    ])])
    error_message = "inline_policies maps a policy name (1-128 of A-Z a-z 0-9 + = , . @ _ -) to a JSON policy document with a Statement (use jsonencode or data.aws_iam_policy_document)."
  }

  validation {
    condition     = alltrue([for r in var.roles : r.profile_name == null ? true : can(regex("^[ a-zA-Z0-9_-]{1,255}$", r.profile_name))])
    error_message = "profile_name must be 1 to 255 of A-Z a-z 0-9 space _ - (Roles Anywhere's ResourceName)."
  }

  validation {
    # The default profile name is the role name, which IAM allows
    # characters (+=,.@) that Roles Anywhere does not.
    condition     = alltrue([for name, r in var.roles : r.profile_name != null || can(regex("^[a-zA-Z0-9_-]+$", name))])
    error_message = "A role whose name has + = , . or @ needs a profile_name: Roles Anywhere names allow only A-Z a-z 0-9 space _ -."
  }

  validation {
    condition     = length(distinct([for name, r in var.roles : coalesce(r.profile_name, name)])) == length(var.roles)
    error_message = "Two roles would get profiles of the same name: give them distinct profile_name values."
  }

  validation {
    condition     = alltrue([for r in var.roles : can(regex("^/([\\x21-\\x7e]{0,510}/)?$", r.path))])
    error_message = "path must start and end with / (such as /ci/), as IAM requires."
  }

  validation {
    condition = alltrue([for r in var.roles : r.agent == null ? true : (
      length(r.agent.identity) > 0 && length(r.agent.match) > 0 &&
      alltrue([for k in r.agent.identity : contains(["gitlab-job-token", "gitlab-id-token", "static-token", "unix-peer"], k)])
    )])
    error_message = "agent.identity lists gitlab-job-token, gitlab-id-token, static-token or unix-peer, and agent.match needs at least one claim (a rule without one would give the role to every caller)."
  }

  validation {
    # The agent names each session itself, which the profile must allow.
    condition     = alltrue([for r in var.roles : r.agent == null || r.accept_role_session_name])
    error_message = "A role with an agent rule needs accept_role_session_name = true: the agent names each session after its job."
  }
}

# Agent fragment and credential_process line ---------------------------------

variable "rolesanywhere_endpoint" {
  description = "Roles Anywhere endpoint written into the outputs (agent config, credential_process line); null means the region's public endpoint. Point it at `keyless emulator` to test."
  type        = string
  default     = null

  validation {
    condition     = var.rolesanywhere_endpoint == null ? true : can(regex("^https?://[^\\s]+$", var.rolesanywhere_endpoint))
    error_message = "rolesanywhere_endpoint must be a URL such as https://rolesanywhere.us-east-1.amazonaws.com."
  }
}

variable "runner_certificate_path" {
  description = "Where the runner's certificate lives, for the credential_process lines (as `keyless certificate` writes it)."
  type        = string
  default     = "/var/lib/keyless/runner.crt"
}

variable "runner_key_path" {
  description = "Where the runner's private key lives, for the credential_process lines."
  type        = string
  default     = "/var/lib/keyless/runner.key"
}

variable "keyless_path" {
  description = "The keyless command in the credential_process lines."
  type        = string
  default     = "keyless"
}

variable "crl_name" {
  description = "Name for the CRL in the import command the outputs print (Roles Anywhere's ResourceName)."
  type        = string
  default     = "keyless-runner-ca"

  validation {
    condition     = can(regex("^[ a-zA-Z0-9_-]{1,255}$", var.crl_name))
    error_message = "crl_name must be 1 to 255 of A-Z a-z 0-9 space _ -."
  }
}

variable "tags" {
  description = "Tags for every resource (Roles Anywhere allows A-Z a-z 0-9 space _ . : / = + @ - in keys and values)."
  type        = map(string)
  default     = {}

  validation {
    condition = length(var.tags) <= 50 && alltrue([for k, v in var.tags :
      can(regex("^[ a-zA-Z0-9_.:/=+@-]{1,128}$", k)) && can(regex("^[ a-zA-Z0-9_.:/=+@-]{0,256}$", v))
    ])
    error_message = "tags: at most 50, keys 1-128 and values 0-256 of A-Z a-z 0-9 space _ . : / = + @ - (Roles Anywhere's limits)."
  }
}
