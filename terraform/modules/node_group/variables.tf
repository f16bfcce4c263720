variable "name" {
  description = "Name of the Auto Scaling group (also the prefix of the launch template). The control plane's IAM policy is scoped to this name."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,200}$", var.name))
    error_message = "name must be letters, digits, dots, dashes and underscores."
  }
}

variable "ami_id" {
  description = "AMI of the nodes (a systemd distribution with cloud-init; Docker is installed with dnf or apt)."
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

variable "instance_type" {
  description = "EC2 instance type of the nodes."
  type        = string
  default     = "t3.large"
}

variable "subnet_ids" {
  description = "Private subnets the group spreads its nodes over."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids must hold at least one subnet."
  }
}

variable "security_group_id" {
  description = "Security group of the nodes."
  type        = string
}

variable "instance_profile_name" {
  description = "Instance profile of the nodes (pulls from ECR, reads the join token)."
  type        = string
}

variable "min_size" {
  description = "Fewest nodes in the group."
  type        = number
  default     = 1

  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "min_size must be a whole number >= 0."
  }
}

variable "max_size" {
  description = "Most nodes in the group; the node autoscaler never asks for more."
  type        = number
  default     = 10

  validation {
    condition     = var.max_size >= 1 && floor(var.max_size) == var.max_size
    error_message = "max_size must be a whole number >= 1."
  }
}

variable "desired_capacity" {
  description = "Nodes at creation. Terraform ignores later changes: the control plane owns this number."
  type        = number
  default     = 2

  validation {
    condition     = var.desired_capacity >= 0 && floor(var.desired_capacity) == var.desired_capacity
    error_message = "desired_capacity must be a whole number >= 0."
  }
}

variable "root_volume_gib" {
  description = "Size of each node's encrypted root volume (images, containers), in GiB."
  type        = number
  default     = 50

  validation {
    condition     = var.root_volume_gib >= 20 && var.root_volume_gib <= 16384
    error_message = "root_volume_gib must be between 20 and 16384."
  }
}

variable "drain_timeout_seconds" {
  description = "Heartbeat timeout of the termination lifecycle hook: how long a terminating node waits for the control plane to drain it and complete the hook."
  type        = number
  default     = 300

  validation {
    condition     = var.drain_timeout_seconds >= 30 && var.drain_timeout_seconds <= 7200
    error_message = "drain_timeout_seconds must be between 30 and 7200."
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

variable "join_token_parameter" {
  description = "Name of the SSM SecureString parameter holding the join token."
  type        = string

  validation {
    condition     = startswith(var.join_token_parameter, "/")
    error_message = "join_token_parameter must be a parameter path starting with /."
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
  description = "Contents of fjord-node-agent.service (deploy/fjord-node-agent.service)."
  type        = string

  validation {
    condition     = strcontains(var.systemd_unit, "ExecStart=")
    error_message = "systemd_unit must be a systemd service unit."
  }
}

variable "port" {
  description = "Port of the agents' invoke endpoint."
  type        = number
  default     = 7500

  validation {
    condition     = var.port > 0 && var.port < 65536
    error_message = "port must be a TCP port number."
  }
}

variable "runtime" {
  description = "How agents run function instances: docker (OCI images) or process."
  type        = string
  default     = "docker"

  validation {
    condition     = contains(["docker", "process"], var.runtime)
    error_message = "runtime must be docker or process."
  }
}

variable "reserved_memory_mib" {
  description = "Memory kept back from functions for the OS, Docker and the agent, in MiB; the rest is offered with --memory-mib."
  type        = number
  default     = 768

  validation {
    condition     = var.reserved_memory_mib >= 256
    error_message = "reserved_memory_mib must be at least 256."
  }
}

variable "reserved_cpu_millis" {
  description = "CPU kept back from functions, in thousandths of a core; the rest is offered with --cpu-millis."
  type        = number
  default     = 250

  validation {
    condition     = var.reserved_cpu_millis >= 0
    error_message = "reserved_cpu_millis must be >= 0."
  }
}

variable "nofile_limit" {
  description = "Open-file limit for services, login sessions and containers on the nodes."
  type        = number
  default     = 1048576

  validation {
    condition     = var.nofile_limit >= 65536 && var.nofile_limit <= 2097152
    error_message = "nofile_limit must be between 65536 and 2097152 (fs.nr_open)."
  }
}

variable "sysctl_overrides" {
  description = "Kernel settings added to, or replacing, the defaults tuned for container churn (see local.default_sysctls)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.sysctl_overrides : can(regex("^[a-z0-9_]+(\\.[a-z0-9_]+)+$", k)) && can(regex("^[0-9]+( [0-9]+)*$", v))])
    error_message = "sysctl_overrides keys must be dotted sysctl names and values numbers (space-separated for ranges)."
  }
}

variable "detailed_monitoring" {
  description = "Enable 1-minute detailed monitoring on the nodes."
  type        = bool
  default     = false
}
