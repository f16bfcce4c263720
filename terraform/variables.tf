variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like an AWS region name, e.g. us-east-1."
  }
}

variable "name" {
  description = "Name of this Fjord deployment; prefixes every resource name and the SSM parameter paths."
  type        = string
  default     = "fjord"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name))
    error_message = "name must be 3-22 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "fjord_release_url" {
  description = "HTTPS URL of a .tar.gz release holding the fjord-control-plane, fjord-node-agent, fjord-lb and fjord binaries, built for var.architecture. Every instance downloads it at boot."
  type        = string

  validation {
    condition     = can(regex("^https://[^ ]+$", var.fjord_release_url))
    error_message = "fjord_release_url must be an https:// URL."
  }
}

variable "fjord_release_sha256" {
  description = "Expected SHA-256 of the release tarball. When set, instances refuse a download that does not match."
  type        = string
  default     = null

  validation {
    condition     = var.fjord_release_sha256 == null || can(regex("^[0-9a-f]{64}$", var.fjord_release_sha256))
    error_message = "fjord_release_sha256 must be 64 lowercase hex digits."
  }
}

variable "architecture" {
  description = "CPU architecture of every instance (and so of the release binaries): x86_64 or arm64."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "ami_id" {
  description = "AMI for every instance. Default: the latest Amazon Linux 2023 for var.architecture. The cloud-init scripts expect a systemd distribution with cloud-init and dnf or apt."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

# --- network ---------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC. Must be a /16 to /20 so each AZ gets room for a public and a private subnet."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR between /16 and /20."
  }
}

variable "az_count" {
  description = "Number of availability zones to spread over (2 or 3). With 3, each control-plane member sits in its own AZ; with 2, losing the AZ that holds two members loses the Raft quorum."
  type        = number
  default     = 3

  validation {
    condition     = contains([2, 3], var.az_count)
    error_message = "az_count must be 2 or 3."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per AZ (survives an AZ outage, costs more) instead of a single shared one."
  type        = bool
  default     = false
}

variable "flow_logs_retention_days" {
  description = "Retention of the VPC flow logs in CloudWatch Logs, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_logs_retention_days)
    error_message = "flow_logs_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

# --- control plane ----------------------------------------------------------

variable "control_plane_instance_type" {
  description = "EC2 instance type of the three control-plane members."
  type        = string
  default     = "t3.small"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.control_plane_instance_type))
    error_message = "control_plane_instance_type must look like an instance type, e.g. t3.small."
  }
}

variable "control_plane_data_volume_gib" {
  description = "Size of each control-plane member's encrypted EBS data volume (Raft log and state), in GiB."
  type        = number
  default     = 20

  validation {
    condition     = var.control_plane_data_volume_gib >= 8 && var.control_plane_data_volume_gib <= 16384
    error_message = "control_plane_data_volume_gib must be between 8 and 16384."
  }
}

variable "control_plane_nats_volume_gib" {
  description = "Size of each control-plane member's encrypted EBS volume for the NATS JetStream store (the queue of asynchronous calls), in GiB. Fjord's streams reserve 9 GiB of it; the server is given the size less 4 GiB."
  type        = number
  default     = 20

  validation {
    condition     = var.control_plane_nats_volume_gib >= 14 && var.control_plane_nats_volume_gib <= 16384
    error_message = "control_plane_nats_volume_gib must be between 14 (Fjord's streams reserve 9 GiB, plus room) and 16384."
  }
}

# --- node group --------------------------------------------------------------

variable "node_instance_type" {
  description = "EC2 instance type of the agent nodes that run functions."
  type        = string
  default     = "t3.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.node_instance_type))
    error_message = "node_instance_type must look like an instance type, e.g. t3.large."
  }
}

variable "node_min_size" {
  description = "Fewest agent nodes the Auto Scaling group keeps."
  type        = number
  default     = 1

  validation {
    condition     = var.node_min_size >= 0 && floor(var.node_min_size) == var.node_min_size
    error_message = "node_min_size must be a whole number >= 0."
  }
}

variable "node_max_size" {
  description = "Most agent nodes the control plane's node autoscaler may ask for."
  type        = number
  default     = 10

  validation {
    condition     = var.node_max_size >= 1 && floor(var.node_max_size) == var.node_max_size
    error_message = "node_max_size must be a whole number >= 1."
  }
}

variable "node_desired_capacity" {
  description = "Agent nodes to start with. Afterwards the control plane owns the desired capacity and terraform leaves it alone."
  type        = number
  default     = 2

  validation {
    condition     = var.node_desired_capacity >= 0 && floor(var.node_desired_capacity) == var.node_desired_capacity
    error_message = "node_desired_capacity must be a whole number >= 0."
  }
}

variable "node_root_volume_gib" {
  description = "Size of each agent node's encrypted root volume (holds pulled function images), in GiB."
  type        = number
  default     = 50

  validation {
    condition     = var.node_root_volume_gib >= 20 && var.node_root_volume_gib <= 16384
    error_message = "node_root_volume_gib must be between 20 and 16384."
  }
}

variable "node_drain_timeout_seconds" {
  description = "How long a terminating node waits in the lifecycle hook for the control plane to drain it before it goes anyway."
  type        = number
  default     = 300

  validation {
    condition     = var.node_drain_timeout_seconds >= 30 && var.node_drain_timeout_seconds <= 7200
    error_message = "node_drain_timeout_seconds must be between 30 and 7200."
  }
}

# --- front door ---------------------------------------------------------------

variable "lb_instance_type" {
  description = "EC2 instance type of the fjord-lb replicas."
  type        = string
  default     = "t3.micro"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.lb_instance_type))
    error_message = "lb_instance_type must look like an instance type, e.g. t3.micro."
  }
}

variable "lb_count" {
  description = "Number of fjord-lb replicas behind the NLB (spread over the AZs)."
  type        = number
  default     = 2

  validation {
    condition     = var.lb_count >= 1 && var.lb_count <= 20 && floor(var.lb_count) == var.lb_count
    error_message = "lb_count must be a whole number between 1 and 20."
  }
}

variable "certificate_arn" {
  description = "ACM certificate ARN for the public endpoint. When set, the NLB terminates TLS on 443; when null, it forwards plain TCP on 80."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "request_body_limit_bytes" {
  description = "Largest request body fjord-lb accepts, in bytes."
  type        = number
  default     = 6291456

  validation {
    condition     = var.request_body_limit_bytes >= 1024
    error_message = "request_body_limit_bytes must be at least 1024."
  }
}

# --- registry and access -------------------------------------------------------

variable "registry_force_delete" {
  description = "Let terraform destroy delete the ECR repository even when it still holds images."
  type        = bool
  default     = false
}

variable "enable_session_manager" {
  description = "Attach AmazonSSMManagedInstanceCore to the instance roles so operators can open shells and port forwards (e.g. to the admin port) with SSM Session Manager. No SSH is opened either way."
  type        = bool
  default     = true
}

variable "detailed_monitoring" {
  description = "Enable 1-minute EC2 detailed monitoring on every instance (billed per instance)."
  type        = bool
  default     = false
}
