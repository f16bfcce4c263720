variable "name" {
  description = "Name prefix for every resource of the network."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC (/16 to /20). Each AZ gets a public and a private subnet carved out of it."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR between /16 and /20."
  }
}

variable "az_count" {
  description = "Number of availability zones to use (2 or 3)."
  type        = number
  default     = 3

  validation {
    condition     = contains([2, 3], var.az_count)
    error_message = "az_count must be 2 or 3."
  }
}

variable "nat_gateway_per_az" {
  description = "Create one NAT gateway per AZ instead of a single one shared by all private subnets."
  type        = bool
  default     = false
}

variable "public_port" {
  description = "The one port the public NLB listens on: 443 with TLS, 80 without."
  type        = number
  default     = 80

  validation {
    condition     = contains([80, 443], var.public_port)
    error_message = "public_port must be 80 or 443."
  }
}

variable "lb_port" {
  description = "Port fjord-lb listens on, on its instances (the NLB's target port)."
  type        = number
  default     = 8080

  validation {
    condition     = var.lb_port > 0 && var.lb_port < 65536
    error_message = "lb_port must be a TCP port number."
  }
}

variable "admin_port" {
  description = "Port of the control plane's gRPC service (admin, agents and Raft)."
  type        = number
  default     = 7400

  validation {
    condition     = var.admin_port > 0 && var.admin_port < 65536
    error_message = "admin_port must be a TCP port number."
  }
}

variable "nats_port" {
  description = "Client port of the NATS JetStream servers on the control-plane members (fjord-lb and the control plane connect to it)."
  type        = number
  default     = 4222

  validation {
    condition     = var.nats_port > 0 && var.nats_port < 65536
    error_message = "nats_port must be a TCP port number."
  }
}

variable "nats_cluster_port" {
  description = "Route port the NATS JetStream servers on the control-plane members replicate over (between the members only)."
  type        = number
  default     = 6222

  validation {
    condition     = var.nats_cluster_port > 0 && var.nats_cluster_port < 65536
    error_message = "nats_cluster_port must be a TCP port number."
  }
}

variable "invoke_port" {
  description = "Port of the node agents' invoke endpoint."
  type        = number
  default     = 7500

  validation {
    condition     = var.invoke_port > 0 && var.invoke_port < 65536
    error_message = "invoke_port must be a TCP port number."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the flow-log group; its policy must let CloudWatch Logs use it."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "enable_flow_logs" {
  description = "Record the VPC's flow logs (rejected and accepted traffic) in CloudWatch Logs."
  type        = bool
  default     = true
}

variable "flow_logs_retention_days" {
  description = "Retention of the flow-log group, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_logs_retention_days)
    error_message = "flow_logs_retention_days must be a value CloudWatch Logs accepts."
  }
}
