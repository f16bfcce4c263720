# Three roles, one per kind of instance, each allowed only what its daemon
# does at boot and at run time.

data "aws_partition" "current" {}

locals {
  roles = toset(["control-plane", "node", "lb"])

  # Tokens are decrypted only when SSM asks on the role's behalf, in the
  # key's own region (field 4 of the key ARN).
  ssm_via = "ssm.${split(":", var.kms_key_arn)[3]}.amazonaws.com"
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.roles

  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_instance_profile" "this" {
  for_each = local.roles

  name = "${var.name}-${each.key}"
  role = aws_iam_role.this[each.key].name
}

resource "aws_iam_role_policy_attachment" "session_manager" {
  for_each = var.enable_session_manager ? local.roles : toset([])

  role       = aws_iam_role.this[each.key].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# --- control plane --------------------------------------------------------------

data "aws_iam_policy_document" "control_plane" {
  # Describe calls have no resource-level permissions: they need "*".
  statement {
    sid = "DescribeFleet"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "ec2:DescribeInstances",
    ]
    resources = ["*"]
  }

  # The node autoscaler: grow the group, drain and terminate exactly one
  # instance, and let a drained instance finish its termination hook.
  statement {
    sid = "ScaleOwnNodeGroup"
    actions = [
      "autoscaling:SetDesiredCapacity",
      "autoscaling:TerminateInstanceInAutoScalingGroup",
      "autoscaling:CompleteLifecycleAction",
    ]
    resources = [var.node_group_arn]
  }

  # The admin token for --token-file, the join token (which agents and
  # fjord-lb present) for --join-token-file, for the NATS server on each
  # member the client token (also --nats-token-file) and the route password,
  # and the key that seals named secrets (--secrets-key-file), which no other
  # role may read.
  statement {
    sid     = "ReadTokens"
    actions = ["ssm:GetParameter"]
    resources = [
      var.admin_token_parameter_arn,
      var.join_token_parameter_arn,
      var.nats_token_parameter_arn,
      var.nats_route_password_parameter_arn,
      var.secrets_key_parameter_arn,
    ]
  }

  statement {
    sid       = "DecryptTokenViaSsm"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_via]
    }
  }
}

resource "aws_iam_role_policy" "control_plane" {
  name   = "fjord-control-plane"
  role   = aws_iam_role.this["control-plane"].id
  policy = data.aws_iam_policy_document.control_plane.json
}

# --- agent nodes -----------------------------------------------------------------

data "aws_iam_policy_document" "node" {
  # ECR hands out registry tokens account-wide; the token alone pulls nothing
  # that the statement below does not allow.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullFunctionImages"
    actions = [
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid       = "ReadJoinToken"
    actions   = ["ssm:GetParameter"]
    resources = [var.join_token_parameter_arn]
  }

  statement {
    sid       = "DecryptTokenViaSsm"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_via]
    }
  }

  # AmazonSSMManagedInstanceCore (enable_session_manager) allows ssm:GetParameter on
  # every parameter, and this role may decrypt with the key: refuse the ones that are
  # not the nodes', explicitly.
  statement {
    sid    = "NeverReadOtherSecrets"
    effect = "Deny"
    actions = [
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:GetParameterHistory",
    ]
    resources = [
      var.admin_token_parameter_arn,
      var.nats_token_parameter_arn,
      var.nats_route_password_parameter_arn,
      var.secrets_key_parameter_arn,
    ]
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "fjord-node-agent"
  role   = aws_iam_role.this["node"].id
  policy = data.aws_iam_policy_document.node.json
}

# --- fjord-lb ------------------------------------------------------------------------

data "aws_iam_policy_document" "lb" {
  # The join token for the control plane, the NATS client token for the queue of
  # asynchronous calls; never the route password.
  statement {
    sid     = "ReadTokens"
    actions = ["ssm:GetParameter"]
    resources = [
      var.join_token_parameter_arn,
      var.nats_token_parameter_arn,
    ]
  }

  statement {
    sid       = "DecryptTokenViaSsm"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_via]
    }
  }

  # As for the nodes: the managed Session Manager policy would let this role read
  # every parameter.
  statement {
    sid    = "NeverReadOtherSecrets"
    effect = "Deny"
    actions = [
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:GetParameterHistory",
    ]
    resources = [
      var.admin_token_parameter_arn,
      var.nats_route_password_parameter_arn,
      var.secrets_key_parameter_arn,
    ]
  }
}

resource "aws_iam_role_policy" "lb" {
  name   = "fjord-lb"
  role   = aws_iam_role.this["lb"].id
  policy = data.aws_iam_policy_document.lb.json
}
