# Fjord on AWS: one VPC, three control-plane members, an Auto Scaling group of
# agent nodes, and fjord-lb replicas behind a public NLB.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_ssm_parameter" "al2023_ami" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.al2023_ami[0].value)

  # The node group's name is fixed up front so the IAM policy of the control
  # plane can be scoped to the group's ARN without a dependency cycle
  # (the group needs the node instance profile, the policy needs the group).
  node_group_name = "${var.name}-nodes"
  node_group_arn  = "arn:${data.aws_partition.current.partition}:autoscaling:${var.region}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/${local.node_group_name}"

  admin_token_parameter         = "/${var.name}/admin-token"
  join_token_parameter          = "/${var.name}/join-token"
  nats_token_parameter          = "/${var.name}/nats-token"
  nats_route_password_parameter = "/${var.name}/nats-route-password"
  secrets_key_parameter         = "/${var.name}/secrets-key"

  public_port = var.certificate_arn == null ? 80 : 443

  # Committed to the repository next to this module; the cloud-init of each
  # instance writes them verbatim, so a VPS and an EC2 instance run the same unit.
  units = {
    control_plane = file("${path.module}/../deploy/fjord-control-plane.service")
    node_agent    = file("${path.module}/../deploy/fjord-node-agent.service")
    lb            = file("${path.module}/../deploy/fjord-lb.service")
  }

  # The NATS JetStream server on each control-plane member, from the same files as on a
  # VPS: its unit, configuration, the script that writes the secrets next to it, and the
  # installer of the pinned nats-server release.
  nats_files = {
    unit           = file("${path.module}/../deploy/fjord-nats.service")
    config         = file("${path.module}/../deploy/nats.conf")
    config_script  = file("${path.module}/../deploy/fjord-nats-config")
    install_script = file("${path.module}/../deploy/fjord-nats-install")
  }
}

module "network" {
  source = "./modules/network"

  name                     = var.name
  vpc_cidr                 = var.vpc_cidr
  az_count                 = var.az_count
  nat_gateway_per_az       = var.nat_gateway_per_az
  public_port              = local.public_port
  kms_key_arn              = aws_kms_key.fjord.arn
  flow_logs_retention_days = var.flow_logs_retention_days
}

module "registry" {
  source = "./modules/registry"

  name          = var.name
  kms_key_arn   = aws_kms_key.fjord.arn
  force_delete  = var.registry_force_delete
  keep_tagged   = 100
  untagged_days = 7
}

module "iam" {
  source = "./modules/iam"

  name                              = var.name
  ecr_repository_arn                = module.registry.repository_arn
  admin_token_parameter_arn         = aws_ssm_parameter.admin_token.arn
  join_token_parameter_arn          = aws_ssm_parameter.join_token.arn
  nats_token_parameter_arn          = aws_ssm_parameter.nats_token.arn
  nats_route_password_parameter_arn = aws_ssm_parameter.nats_route_password.arn
  secrets_key_parameter_arn         = aws_ssm_parameter.secrets_key.arn
  kms_key_arn                       = aws_kms_key.fjord.arn
  node_group_arn                    = local.node_group_arn
  enable_session_manager            = var.enable_session_manager
}

module "control_plane" {
  source = "./modules/control_plane"

  name                          = var.name
  ami_id                        = local.ami_id
  instance_type                 = var.control_plane_instance_type
  subnet_ids                    = module.network.private_subnet_ids
  subnet_cidrs                  = module.network.private_subnet_cidrs
  availability_zones            = module.network.availability_zones
  security_group_id             = module.network.control_plane_security_group_id
  instance_profile_name         = module.iam.control_plane_instance_profile_name
  kms_key_arn                   = aws_kms_key.fjord.arn
  data_volume_gib               = var.control_plane_data_volume_gib
  nats_volume_gib               = var.control_plane_nats_volume_gib
  release_url                   = var.fjord_release_url
  release_sha256                = var.fjord_release_sha256
  admin_token_parameter         = aws_ssm_parameter.admin_token.name
  join_token_parameter          = aws_ssm_parameter.join_token.name
  nats_token_parameter          = aws_ssm_parameter.nats_token.name
  nats_route_password_parameter = aws_ssm_parameter.nats_route_password.name
  secrets_key_parameter         = aws_ssm_parameter.secrets_key.name
  node_group_name               = local.node_group_name
  systemd_unit                  = local.units.control_plane
  nats_files                    = local.nats_files
  detailed_monitoring           = var.detailed_monitoring
}

module "node_group" {
  source = "./modules/node_group"

  name                  = local.node_group_name
  ami_id                = local.ami_id
  instance_type         = var.node_instance_type
  subnet_ids            = module.network.private_subnet_ids
  security_group_id     = module.network.node_security_group_id
  instance_profile_name = module.iam.node_instance_profile_name
  min_size              = var.node_min_size
  max_size              = var.node_max_size
  desired_capacity      = var.node_desired_capacity
  root_volume_gib       = var.node_root_volume_gib
  drain_timeout_seconds = var.node_drain_timeout_seconds
  control_plane_urls    = module.control_plane.urls
  join_token_parameter  = aws_ssm_parameter.join_token.name
  release_url           = var.fjord_release_url
  release_sha256        = var.fjord_release_sha256
  systemd_unit          = local.units.node_agent
  detailed_monitoring   = var.detailed_monitoring
}

module "front_door" {
  source = "./modules/front_door"

  name                  = var.name
  ami_id                = local.ami_id
  instance_type         = var.lb_instance_type
  instance_count        = var.lb_count
  vpc_id                = module.network.vpc_id
  public_subnet_ids     = module.network.public_subnet_ids
  private_subnet_ids    = module.network.private_subnet_ids
  nlb_security_group_id = module.network.nlb_security_group_id
  lb_security_group_id  = module.network.lb_security_group_id
  instance_profile_name = module.iam.lb_instance_profile_name
  certificate_arn       = var.certificate_arn
  control_plane_urls    = module.control_plane.urls
  token_parameter       = aws_ssm_parameter.join_token.name
  nats_urls             = module.control_plane.nats_urls
  nats_token_parameter  = aws_ssm_parameter.nats_token.name
  body_limit_bytes      = var.request_body_limit_bytes
  release_url           = var.fjord_release_url
  release_sha256        = var.fjord_release_sha256
  systemd_unit          = local.units.lb
  detailed_monitoring   = var.detailed_monitoring
}
