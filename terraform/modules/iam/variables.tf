variable "name" {
  description = "Name prefix of the roles and instance profiles."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "ecr_repository_arn" {
  description = "ARN of the function image repository the agents pull from."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.ecr_repository_arn))
    error_message = "ecr_repository_arn must be an ECR repository ARN."
  }
}

variable "admin_token_parameter_arn" {
  description = "ARN of the SSM parameter holding the admin token (read by the control plane)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+$", var.admin_token_parameter_arn))
    error_message = "admin_token_parameter_arn must be an SSM parameter ARN."
  }
}

variable "join_token_parameter_arn" {
  description = "ARN of the SSM parameter holding the join token (read by the control plane, agents and fjord-lb)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+$", var.join_token_parameter_arn))
    error_message = "join_token_parameter_arn must be an SSM parameter ARN."
  }
}

variable "nats_token_parameter_arn" {
  description = "ARN of the SSM parameter holding the NATS client token (read by the control plane and fjord-lb)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+$", var.nats_token_parameter_arn))
    error_message = "nats_token_parameter_arn must be an SSM parameter ARN."
  }
}

variable "nats_route_password_parameter_arn" {
  description = "ARN of the SSM parameter holding the NATS route password (read by the control plane only)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+$", var.nats_route_password_parameter_arn))
    error_message = "nats_route_password_parameter_arn must be an SSM parameter ARN."
  }
}

variable "secrets_key_parameter_arn" {
  description = "ARN of the SSM parameter holding the key that seals named secrets (read by the control plane only)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+$", var.secrets_key_parameter_arn))
    error_message = "secrets_key_parameter_arn must be an SSM parameter ARN."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the token parameters; the roles may decrypt with it through SSM only."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "node_group_arn" {
  description = "ARN (the autoScalingGroup:*:autoScalingGroupName/NAME form works) of the agent nodes' Auto Scaling group, the only group the control plane may change."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:autoscaling:[a-z0-9-]+:[0-9]{12}:autoScalingGroup:.+:autoScalingGroupName/.+$", var.node_group_arn))
    error_message = "node_group_arn must be an Auto Scaling group ARN."
  }
}

variable "enable_session_manager" {
  description = "Attach AmazonSSMManagedInstanceCore so operators can reach instances with SSM Session Manager instead of SSH."
  type        = bool
  default     = true
}
