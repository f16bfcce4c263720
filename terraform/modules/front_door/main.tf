# The public entry: an internet-facing NLB in the public subnets, forwarding
# to fjord-lb replicas in the private subnets. The NLB terminates TLS when a
# certificate is given; otherwise it passes plain TCP on port 80.

locals {
  tls           = var.certificate_arn != null
  listener_port = local.tls ? 443 : 80

  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    listen               = "0.0.0.0:${var.port}"
    control_plane        = join(",", var.control_plane_urls)
    body_limit_bytes     = var.body_limit_bytes
    token_parameter      = var.token_parameter
    nats_urls            = join(",", var.nats_urls)
    nats_replicas        = length(var.nats_urls)
    nats_token_parameter = var.nats_token_parameter
    systemd_unit         = var.systemd_unit
    install_script = templatefile("${path.module}/../../templates/install-release.sh.tftpl", {
      release_url    = var.release_url
      release_sha256 = var.release_sha256 == null ? "" : var.release_sha256
    })
    helpers = file("${path.module}/../../templates/imds.sh")
  })
}

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_150:Deletion protection would make terraform destroy fail; set var.deletion_protection for production.
  name                             = "${var.name}-public"
  internal                         = false
  load_balancer_type               = "network"
  subnets                          = var.public_subnet_ids
  security_groups                  = [var.nlb_security_group_id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection

  dynamic "access_logs" {
    for_each = var.access_logs_bucket == null ? [] : [var.access_logs_bucket]

    content {
      bucket  = access_logs.value
      prefix  = "${var.name}-public"
      enabled = true
    }
  }
}

resource "aws_lb_target_group" "lb" {
  name                 = "${var.name}-lb"
  port                 = var.port
  protocol             = "TCP"
  target_type          = "instance"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/healthz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "public" {
  load_balancer_arn = aws_lb.this.arn
  port              = local.listener_port
  protocol          = local.tls ? "TLS" : "TCP"
  certificate_arn   = var.certificate_arn
  ssl_policy        = local.tls ? var.ssl_policy : null
  alpn_policy       = local.tls ? "HTTP1Only" : null

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.lb.arn
  }
}

resource "aws_launch_template" "lb" {
  name_prefix            = "${var.name}-lb-"
  description            = "Fjord fjord-lb replica"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  update_default_version = true
  ebs_optimized          = true
  vpc_security_group_ids = [var.lb_security_group_id]
  user_data              = base64encode(local.user_data)

  iam_instance_profile {
    name = var.instance_profile_name
  }

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
    tags          = { Name = "${var.name}-lb", "fjord:role" = "lb" }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = { Name = "${var.name}-lb", "fjord:role" = "lb" }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_autoscaling_group" "lb" {
  name                      = "${var.name}-lb"
  min_size                  = var.instance_count
  max_size                  = var.instance_count
  desired_capacity          = var.instance_count
  vpc_zone_identifier       = var.private_subnet_ids
  target_group_arns         = [aws_lb_target_group.lb.arn]
  health_check_type         = "ELB"
  health_check_grace_period = 180

  launch_template {
    id      = aws_launch_template.lb.id
    version = aws_launch_template.lb.latest_version
  }

  # A new launch template version (new release URL, AMI or settings) rolls
  # through the replicas one at a time, keeping the rest in service.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 50
    }
  }

  tag {
    key                 = "Name"
    value               = "${var.name}-lb"
    propagate_at_launch = true
  }

  tag {
    key                 = "fjord:role"
    value               = "lb"
    propagate_at_launch = true
  }
}
