# One customer-managed key for everything this deployment encrypts: the SSM
# token parameters, the ECR repository, the control-plane data volumes and the
# VPC flow logs.
resource "aws_kms_key" "fjord" {
  description             = "Fjord deployment ${var.name}: tokens, registry, control-plane volumes, flow logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "fjord" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.fjord.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; account administrators keep control so the key can never become unmanageable.
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; write access is limited to this account's principals.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only.

  # The account's IAM decides who may use the key (the instance roles get
  # kms:Decrypt through their own policies, in modules/iam).
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the flow-log group with this key, for log groups
  # of this account and region only.
  statement {
    sid = "CloudWatchLogs"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }
}

# Tokens. Terraform generates them, so they are in the state: keep the state in
# an encrypted backend with restricted access.
resource "random_password" "admin_token" {
  length  = 48
  special = false
}

resource "random_password" "join_token" {
  length  = 48
  special = false
}

resource "aws_ssm_parameter" "admin_token" {
  name        = local.admin_token_parameter
  description = "Fjord ${var.name}: admin token (FJORD_TOKEN for the fjord CLI; read by the control plane at boot)"
  type        = "SecureString"
  key_id      = aws_kms_key.fjord.arn
  value       = random_password.admin_token.result
}

resource "aws_ssm_parameter" "join_token" {
  name        = local.join_token_parameter
  description = "Fjord ${var.name}: join token presented by node agents and fjord-lb; read by the control plane at boot (Agent and Routes APIs only)"
  type        = "SecureString"
  key_id      = aws_kms_key.fjord.arn
  value       = random_password.join_token.result
}

# NATS JetStream on the control-plane members: the client token, which fjord-lb and the
# control plane present, and the password the servers' routes to each other carry. Hex
# only (special = false): both go into nats.conf and route URLs unescaped.
resource "random_password" "nats_token" {
  length  = 48
  special = false
}

resource "random_password" "nats_route_password" {
  length  = 48
  special = false
}

resource "aws_ssm_parameter" "nats_token" {
  name        = local.nats_token_parameter
  description = "Fjord ${var.name}: NATS client token; read at boot by the control plane and fjord-lb (asynchronous calls, schedules)"
  type        = "SecureString"
  key_id      = aws_kms_key.fjord.arn
  value       = random_password.nats_token.result
}

resource "aws_ssm_parameter" "nats_route_password" {
  name        = local.nats_route_password_parameter
  description = "Fjord ${var.name}: password of the NATS routes between the control-plane members; read at boot by the members only"
  type        = "SecureString"
  key_id      = aws_kms_key.fjord.arn
  value       = random_password.nats_route_password.result
}

# The key that seals named secrets (`fjord secret`) in the control plane's Raft log and
# snapshots (--secrets-key-file): 32 random bytes, written as 64 hexadecimal digits. It is
# generated once and read by the control-plane members only. Replacing it (a changed
# byte_length, -replace) leaves every stored secret sealed with a key no member holds.
resource "random_id" "secrets_key" {
  byte_length = 32
}

resource "aws_ssm_parameter" "secrets_key" {
  name        = local.secrets_key_parameter
  description = "Fjord ${var.name}: key that seals named secrets at rest (--secrets-key-file); read at boot by the control-plane members only"
  type        = "SecureString"
  key_id      = aws_kms_key.fjord.arn
  value       = random_id.secrets_key.hex
}
