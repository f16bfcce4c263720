variable "name" {
  description = "Name prefix of the control-plane resources."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "ami_id" {
  description = "AMI of the members (a systemd distribution with cloud-init)."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

variable "instance_type" {
  description = "EC2 instance type of each member."
  type        = string
  default     = "t3.small"
}

variable "subnet_ids" {
  description = "Private subnets, one per AZ; member N goes to subnet (N-1) mod count, so 3 subnets give 3 AZs."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids must hold at least 2 subnets (3 to survive the loss of any AZ)."
  }
}

variable "subnet_cidrs" {
  description = "CIDR blocks of subnet_ids, same order; each member's fixed private IP is taken from its subnet."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "subnet_cidrs must be IPv4 CIDR blocks."
  }
}

variable "availability_zones" {
  description = "AZ of each subnet in subnet_ids, same order (the data volumes are created there)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "availability_zones must hold at least 2 AZs."
  }
}

variable "ip_host_number" {
  description = "Host number of the members' fixed private IPs inside their subnets (cidrhost). A second member in the same subnet takes the next number."
  type        = number
  default     = 10

  validation {
    condition     = var.ip_host_number >= 4 && var.ip_host_number <= 250
    error_message = "ip_host_number must be between 4 and 250 (AWS reserves the first four addresses of a subnet)."
  }
}

variable "port" {
  description = "Port of the control plane's gRPC service."
  type        = number
  default     = 7400

  validation {
    condition     = var.port > 0 && var.port < 65536
    error_message = "port must be a TCP port number."
  }
}

variable "nats_port" {
  description = "Client port of the NATS JetStream server on each member."
  type        = number
  default     = 4222

  validation {
    condition     = var.nats_port > 0 && var.nats_port < 65536
    error_message = "nats_port must be a TCP port number."
  }
}

variable "nats_cluster_port" {
  description = "Route port of the NATS JetStream servers (between the members only)."
  type        = number
  default     = 6222

  validation {
    condition     = var.nats_cluster_port > 0 && var.nats_cluster_port < 65536
    error_message = "nats_cluster_port must be a TCP port number."
  }
}

variable "security_group_id" {
  description = "Security group of the members."
  type        = string
}

variable "instance_profile_name" {
  description = "Instance profile of the members (reads the tokens and the secrets key, scales the node group)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the members' root and data volumes."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "root_volume_gib" {
  description = "Size of each member's encrypted root volume, in GiB."
  type        = number
  default     = 16

  validation {
    condition     = var.root_volume_gib >= 8
    error_message = "root_volume_gib must be at least 8."
  }
}

variable "data_volume_gib" {
  description = "Size of each member's encrypted EBS data volume (Raft log, vote, snapshots), in GiB."
  type        = number
  default     = 20

  validation {
    condition     = var.data_volume_gib >= 8 && var.data_volume_gib <= 16384
    error_message = "data_volume_gib must be between 8 and 16384."
  }
}

variable "nats_volume_gib" {
  description = "Size of each member's encrypted EBS volume for the NATS JetStream store, in GiB. The server may use the size less 4 GiB (max_file_store); Fjord's streams reserve 9 GiB."
  type        = number
  default     = 20

  validation {
    condition     = var.nats_volume_gib >= 14 && var.nats_volume_gib <= 16384
    error_message = "nats_volume_gib must be between 14 and 16384."
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

variable "admin_token_parameter" {
  description = "Name of the SSM SecureString parameter holding the admin token."
  type        = string

  validation {
    condition     = startswith(var.admin_token_parameter, "/")
    error_message = "admin_token_parameter must be a parameter path starting with /."
  }
}

variable "join_token_parameter" {
  description = "Name of the SSM SecureString parameter holding the join token that node agents and fjord-lb present (--join-token-file)."
  type        = string

  validation {
    condition     = startswith(var.join_token_parameter, "/")
    error_message = "join_token_parameter must be a parameter path starting with /."
  }
}

variable "nats_token_parameter" {
  description = "Name of the SSM SecureString parameter holding the NATS client token (the NATS servers' authorization, and --nats-token-file of the control plane)."
  type        = string

  validation {
    condition     = startswith(var.nats_token_parameter, "/")
    error_message = "nats_token_parameter must be a parameter path starting with /."
  }
}

variable "nats_route_password_parameter" {
  description = "Name of the SSM SecureString parameter holding the password of the routes between the NATS servers."
  type        = string

  validation {
    condition     = startswith(var.nats_route_password_parameter, "/")
    error_message = "nats_route_password_parameter must be a parameter path starting with /."
  }
}

variable "secrets_key_parameter" {
  description = "Name of the SSM SecureString parameter holding the key that seals named secrets (--secrets-key-file; 64 hexadecimal digits)."
  type        = string

  validation {
    condition     = startswith(var.secrets_key_parameter, "/")
    error_message = "secrets_key_parameter must be a parameter path starting with /."
  }
}

variable "node_group_name" {
  description = "Name of the agent nodes' Auto Scaling group; recorded as a tag on the members (fjord:node-group) for operators and tooling."
  type        = string
}

variable "systemd_unit" {
  description = "Contents of fjord-control-plane.service (deploy/fjord-control-plane.service)."
  type        = string

  validation {
    condition     = strcontains(var.systemd_unit, "ExecStart=")
    error_message = "systemd_unit must be a systemd service unit."
  }
}

variable "nats_files" {
  description = "The NATS server's files from deploy/: unit (fjord-nats.service), config (nats.conf), config_script (fjord-nats-config) and install_script (fjord-nats-install)."
  type = object({
    unit           = string
    config         = string
    config_script  = string
    install_script = string
  })

  validation {
    condition     = strcontains(var.nats_files.unit, "ExecStart=") && strcontains(var.nats_files.config, "jetstream")
    error_message = "nats_files.unit must be a systemd service unit and nats_files.config a nats-server configuration with jetstream."
  }
}

variable "detailed_monitoring" {
  description = "Enable 1-minute detailed monitoring on the members."
  type        = bool
  default     = false
}
