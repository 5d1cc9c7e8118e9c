# The reference setup's variables, mapped onto this module (README.md has
# the table). Reference values:
#   trust_anchor_name        = "gitlab-runner-ca"
#   profile_name             = "homelab-profile"
#   role_name                = "gitlab-runner-role"
#   ca_bundle_path           = "./certs/bundle.pem"
#   role_policy_arns         = []
#   allowed_cn               = "gitlab-runner"
#   session_duration_seconds = 3600

trust_anchor_name = "gitlab-runner-ca"

# keyless ca bundle > certs/bundle.pem   (replaces the scp-and-cat script)
ca_bundle_path = "./certs/bundle.pem"

roles = {
  # role_name is the key.
  "gitlab-runner-role" = {
    profile_name             = "homelab-profile"
    allowed_cn               = ["gitlab-runner"]
    policy_arns              = [] # role_policy_arns
    session_duration_seconds = 3600
    # The reference set the role's max_session_duration to the session
    # duration; the module defaults to the larger of that and 3600.

    # What the reference lacked: per-job session names through keyless
    # agent (the profile accepts them; this is the module's default).
    accept_role_session_name = true
    agent = {
      identity = ["gitlab-job-token"]
      match    = { project_path = ["homelab/*"] }
    }
  }
}
