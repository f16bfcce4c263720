variable "name" {
  description = "Name prefix of the front-door resources (NLB names are limited to 32 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}$", var.name))
    error_message = "name must be 2-25 lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "ami_id" {
  description = "AMI of the fjord-lb instances (a systemd distribution with cloud-init)."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

variable "root_device_name" {
  description = "Root device name of the AMI (/dev/xvda on Amazon Linux 2023, /dev/sda1 on Debian and Ubuntu)."
  type        = string
  default     = "/dev/xvda"

  validation {
    condition     = startswith(var.root_device_name, "/dev/")
    error_message = "root_device_name must be a /dev path."
  }
}

variable "root_volume_gib" {
  description = "Size of each fjord-lb instance's encrypted root volume, in GiB."
  type        = number
  default     = 16

  validation {
    condition     = var.root_volume_gib >= 8
    error_message = "root_volume_gib must be at least 8."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the fjord-lb replicas."
  type        = string
  default     = "t3.micro"
}

variable "instance_count" {
  description = "Number of fjord-lb replicas (the group keeps exactly this many)."
  type        = number
  default     = 2

  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 20 && floor(var.instance_count) == var.instance_count
    error_message = "instance_count must be a whole number between 1 and 20."
  }
}

variable "vpc_id" {
  description = "VPC of the target group."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets the NLB sits in, one per AZ."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 1
    error_message = "public_subnet_ids must hold at least one subnet."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets the fjord-lb instances run in."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 1
    error_message = "private_subnet_ids must hold at least one subnet."
  }
}

variable "nlb_security_group_id" {
  description = "Security group of the NLB."
  type        = string
}

variable "lb_security_group_id" {
  description = "Security group of the fjord-lb instances."
  type        = string
}

variable "instance_profile_name" {
  description = "Instance profile of the fjord-lb instances (reads their token)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for a TLS listener on 443; null for a plain TCP listener on 80."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN or null."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the 443 listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = startswith(var.ssl_policy, "ELBSecurityPolicy-")
    error_message = "ssl_policy must be an ELB security policy name."
  }
}

variable "port" {
  description = "Port fjord-lb listens on, on its instances (the target port)."
  type        = number
  default     = 8080

  validation {
    condition     = var.port > 0 && var.port < 65536
    error_message = "port must be a TCP port number."
  }
}

variable "control_plane_urls" {
  description = "gRPC URLs of every control-plane member (http://host:port)."
  type        = list(string)

  validation {
    condition     = length(var.control_plane_urls) >= 1 && alltrue([for u in var.control_plane_urls : can(regex("^https?://[^/ ,]+$", u))])
    error_message = "control_plane_urls must be one or more http(s)://host:port URLs."
  }
}

variable "token_parameter" {
  description = "Name of the SSM SecureString parameter holding the token fjord-lb presents to the control plane."
  type        = string

  validation {
    condition     = startswith(var.token_parameter, "/")
    error_message = "token_parameter must be a parameter path starting with /."
  }
}

variable "nats_urls" {
  description = "The NATS JetStream servers (nats://host:port) of the queue of asynchronous calls; their number is the streams' replica count."
  type        = list(string)

  validation {
    condition     = length(var.nats_urls) >= 1 && length(var.nats_urls) <= 5 && alltrue([for u in var.nats_urls : can(regex("^nats://[^/ ,]+:[0-9]+$", u))])
    error_message = "nats_urls must be 1 to 5 nats://host:port URLs."
  }
}

variable "nats_token_parameter" {
  description = "Name of the SSM SecureString parameter holding the NATS client token."
  type        = string

  validation {
    condition     = startswith(var.nats_token_parameter, "/")
    error_message = "nats_token_parameter must be a parameter path starting with /."
  }
}

variable "body_limit_bytes" {
  description = "Largest request body fjord-lb accepts, in bytes."
  type        = number
  default     = 6291456

  validation {
    condition     = var.body_limit_bytes >= 1024
    error_message = "body_limit_bytes must be at least 1024."
  }
}

variable "release_url" {
  description = "HTTPS URL of the Fjord release tarball."
  type        = string

  validation {
    condition     = can(regex("^https://", var.release_url))
    error_message = "release_url must be an https:// URL."
  }
}

variable "release_sha256" {
  description = "Expected SHA-256 of the release tarball, or null to skip the check."
  type        = string
  default     = null
}

variable "systemd_unit" {
  description = "Contents of fjord-lb.service (deploy/fjord-lb.service)."
  type        = string

  validation {
    condition     = strcontains(var.systemd_unit, "ExecStart=")
    error_message = "systemd_unit must be a systemd service unit."
  }
}

variable "access_logs_bucket" {
  description = "S3 bucket for NLB access logs (TLS listener only), or null for none."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the NLB from deletion (terraform destroy then fails until it is turned off)."
  type        = bool
  default     = false
}

variable "detailed_monitoring" {
  description = "Enable 1-minute detailed monitoring on the fjord-lb instances."
  type        = bool
  default     = false
}
