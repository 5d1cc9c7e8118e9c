terraform {
  # optional() attributes with defaults need 1.3, strcontains 1.5.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # accept_role_session_name on aws_rolesanywhere_profile arrived in
      # the 6.x series; the reference setup used 6.23.
      version = ">= 6.0"
    }
  }
}
