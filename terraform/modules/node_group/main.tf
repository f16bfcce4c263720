locals {
  # Many short-lived containers mean many sockets, conntrack entries, ARP
  # neighbours (one veth per container) and ephemeral ports.
  default_sysctls = {
    "fs.file-max"                       = "2097152"
    "fs.nr_open"                        = "2097152"
    "fs.inotify.max_user_instances"     = "8192"
    "fs.inotify.max_user_watches"       = "524288"
    "net.netfilter.nf_conntrack_max"    = "524288"
    "net.ipv4.ip_local_port_range"      = "10240 65535"
    "net.ipv4.tcp_tw_reuse"             = "1"
    "net.core.somaxconn"                = "8192"
    "net.ipv4.tcp_max_syn_backlog"      = "8192"
    "net.ipv4.neigh.default.gc_thresh1" = "4096"
    "net.ipv4.neigh.default.gc_thresh2" = "8192"
    "net.ipv4.neigh.default.gc_thresh3" = "16384"
    "vm.max_map_count"                  = "262144"
  }
  sysctls     = merge(local.default_sysctls, var.sysctl_overrides)
  sysctl_conf = join("\n", [for k in sort(keys(local.sysctls)) : "${k} = ${local.sysctls[k]}"])

  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    control_plane        = join(",", var.control_plane_urls)
    port                 = var.port
    runtime              = var.runtime
    join_token_parameter = var.join_token_parameter
    reserved_memory_mib  = var.reserved_memory_mib
    reserved_cpu_millis  = var.reserved_cpu_millis
    nofile_limit         = var.nofile_limit
    sysctl_conf          = local.sysctl_conf
    systemd_unit         = var.systemd_unit
    install_script = templatefile("${path.module}/../../templates/install-release.sh.tftpl", {
      release_url    = var.release_url
      release_sha256 = var.release_sha256 == null ? "" : var.release_sha256
    })
    helpers = file("${path.module}/../../templates/imds.sh")
  })

  lifecycle_hook_name = "drain"
}

resource "aws_launch_template" "this" {
  name_prefix            = "${var.name}-"
  description            = "Fjord agent node"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  update_default_version = true
  ebs_optimized          = true
  vpc_security_group_ids = [var.security_group_id]
  user_data              = base64encode(local.user_data)

  iam_instance_profile {
    name = var.instance_profile_name
  }

  # IMDSv2 only, and a hop limit of 1: the agent on the host reaches the
  # metadata service, containers behind the Docker bridge (one hop further)
  # cannot, so functions never see the node's credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = var.root_device_name

    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_gib
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = var.detailed_monitoring
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = var.name, "fjord:role" = "node" }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = { Name = var.name, "fjord:role" = "node" }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_autoscaling_group" "this" {
  name                      = var.name
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.desired_capacity
  vpc_zone_identifier       = var.subnet_ids
  health_check_type         = "EC2"
  health_check_grace_period = 300

  # The control plane decides which node goes (the emptiest, after draining
  # it) and terminates exactly that one; the group itself never picks a victim.
  protect_from_scale_in = true
  # ...which would otherwise make `terraform destroy` wait forever for
  # protected instances.
  force_delete = true

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # A terminating node waits here (Terminating:Wait) until the control plane
  # has drained it and completes the action, or until the timeout.
  initial_lifecycle_hook {
    name                 = local.lifecycle_hook_name
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = var.drain_timeout_seconds
    default_result       = "CONTINUE"
  }

  tag {
    key                 = "Name"
    value               = var.name
    propagate_at_launch = true
  }

  tag {
    key                 = "fjord:role"
    value               = "node"
    propagate_at_launch = true
  }

  lifecycle {
    # After creation the control plane's node autoscaler owns the size.
    ignore_changes = [desired_capacity]

    precondition {
      condition     = var.min_size <= var.desired_capacity && var.desired_capacity <= var.max_size
      error_message = "The node group needs min_size <= desired_capacity <= max_size."
    }
  }
}
