variable "name" {
  description = "Name of the ECR repository for function images."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.name))
    error_message = "name must be a valid ECR repository name (lowercase, digits, . _ - /)."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the repository's images."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "force_delete" {
  description = "Allow deleting the repository while it still holds images."
  type        = bool
  default     = false
}

variable "keep_tagged" {
  description = "How many tagged images the lifecycle policy keeps; older ones expire."
  type        = number
  default     = 100

  validation {
    condition     = var.keep_tagged >= 1 && floor(var.keep_tagged) == var.keep_tagged
    error_message = "keep_tagged must be a whole number >= 1."
  }
}

variable "untagged_days" {
  description = "Days after which untagged images (left behind by pushes) expire."
  type        = number
  default     = 7

  validation {
    condition     = var.untagged_days >= 1 && floor(var.untagged_days) == var.untagged_days
    error_message = "untagged_days must be a whole number >= 1."
  }
}
