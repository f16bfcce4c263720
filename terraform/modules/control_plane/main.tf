# Three Raft members, each in its own AZ when three are given, with a fixed
# private IP (so the member list never changes when an instance is replaced)
# and its own encrypted data volume (so a replaced instance keeps its log).
# Each also runs one of the three NATS JetStream servers that hold the queue of
# asynchronous calls, with its store on a second encrypted volume of its own,
# so a full queue can never fill the Raft log's disk.

locals {
  member_ids = [1, 2, 3]

  # Member N sits in subnet (N-1) mod count; with fewer subnets than members
  # a second member in the same subnet takes the next host number.
  placement = {
    for id in local.member_ids : tostring(id) => {
      subnet = (id - 1) % length(var.subnet_ids)
      ip     = cidrhost(var.subnet_cidrs[(id - 1) % length(var.subnet_ids)], var.ip_host_number + floor((id - 1) / length(var.subnet_ids)))
    }
  }

  members = {
    for key, p in local.placement : key => {
      id        = tonumber(key)
      subnet    = p.subnet
      ip        = p.ip
      zone      = var.availability_zones[p.subnet]
      advertise = "${p.ip}:${var.port}"
    }
  }

  initial_members = join(",", [for id in local.member_ids : "${id}=${local.members[tostring(id)].advertise}"])

  nats_urls   = [for id in local.member_ids : "nats://${local.members[tostring(id)].ip}:${var.nats_port}"]
  nats_routes = join(",", [for id in local.member_ids : "${local.members[tostring(id)].ip}:${var.nats_cluster_port}"])

  install_script = templatefile("${path.module}/../../templates/install-release.sh.tftpl", {
    release_url    = var.release_url
    release_sha256 = var.release_sha256 == null ? "" : var.release_sha256
  })
  helpers = file("${path.module}/../../templates/imds.sh")
}

resource "aws_ebs_volume" "data" {
  for_each = local.members

  availability_zone = each.value.zone
  size              = var.data_volume_gib
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.kms_key_arn

  tags = {
    Name              = "${var.name}-control-plane-${each.key}-data"
    "fjord:member-id" = each.key
    "fjord:role"      = "control-plane-data"
  }
}

resource "aws_ebs_volume" "nats" {
  for_each = local.members

  availability_zone = each.value.zone
  size              = var.nats_volume_gib
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.kms_key_arn

  tags = {
    Name              = "${var.name}-control-plane-${each.key}-nats"
    "fjord:member-id" = each.key
    "fjord:role"      = "control-plane-nats"
  }
}

resource "aws_instance" "member" {
  #checkov:skip=CKV_AWS_126:Detailed monitoring is billed per instance and off by default (var.detailed_monitoring); Fjord's own /metrics cover the daemons.
  for_each = local.members

  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_ids[each.value.subnet]
  private_ip             = each.value.ip
  vpc_security_group_ids = [var.security_group_id]
  iam_instance_profile   = var.instance_profile_name
  ebs_optimized          = true
  monitoring             = var.detailed_monitoring

  # Gzipped: with the NATS server's files the YAML is past EC2's 16 KiB limit on user
  # data; cloud-init unpacks it (terraform/tests/check_user_data.py measures it).
  user_data_base64 = base64gzip(templatefile("${path.module}/cloud-init.yaml.tftpl", {
    member_id                     = each.value.id
    listen                        = "0.0.0.0:${var.port}"
    advertise                     = each.value.advertise
    port                          = var.port
    initial_members               = local.initial_members
    volume_id                     = aws_ebs_volume.data[each.key].id
    nats_volume_id                = aws_ebs_volume.nats[each.key].id
    admin_token_parameter         = var.admin_token_parameter
    join_token_parameter          = var.join_token_parameter
    nats_token_parameter          = var.nats_token_parameter
    nats_route_password_parameter = var.nats_route_password_parameter
    secrets_key_parameter         = var.secrets_key_parameter
    nats_urls                     = join(",", local.nats_urls)
    nats_replicas                 = length(local.nats_urls)
    nats_listen                   = "0.0.0.0:${var.nats_port}"
    nats_cluster_listen           = "0.0.0.0:${var.nats_cluster_port}"
    nats_routes                   = local.nats_routes
    nats_max_file_store           = "${var.nats_volume_gib - 4}GB"
    systemd_unit                  = var.systemd_unit
    nats_unit                     = var.nats_files.unit
    nats_config                   = var.nats_files.config
    nats_config_script            = var.nats_files.config_script
    nats_install_script           = var.nats_files.install_script
    install_script                = local.install_script
    helpers                       = local.helpers
  }))

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gib
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    delete_on_termination = true
  }

  tags = {
    Name               = "${var.name}-control-plane-${each.key}"
    "fjord:role"       = "control-plane"
    "fjord:member-id"  = each.key
    "fjord:node-group" = var.node_group_name
  }

  lifecycle {
    # Replacing a member is a deliberate, one-at-a-time act
    # (terraform apply -replace=...), never a side effect of a new AMI or a
    # changed release URL, which would otherwise replace all three at once.
    ignore_changes = [ami, user_data, user_data_base64]
  }
}

resource "aws_volume_attachment" "data" {
  for_each = local.members

  device_name                    = "/dev/sdf"
  volume_id                      = aws_ebs_volume.data[each.key].id
  instance_id                    = aws_instance.member[each.key].id
  stop_instance_before_detaching = true
}

resource "aws_volume_attachment" "nats" {
  for_each = local.members

  device_name                    = "/dev/sdg"
  volume_id                      = aws_ebs_volume.nats[each.key].id
  instance_id                    = aws_instance.member[each.key].id
  stop_instance_before_detaching = true
}
