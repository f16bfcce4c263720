# Four groups, and the only door from the internet is the NLB's public port.
#
#   internet --public_port--> nlb --lb_port--> lb --invoke_port--> nodes
#                                              lb, nodes, VPC --admin_port--> control plane
#                                   lb, control plane --nats_port--> control plane (NATS)
#                                  control plane --nats_cluster_port--> control plane (NATS routes)
#
# Agent nodes never reach NATS: they neither enqueue nor consume asynchronous calls.
#
# Egress is limited to the VPC, and HTTP(S) out through the NAT gateway
# (release download, ECR, SSM, package mirrors, public registries).
# No group opens SSH; use SSM Session Manager.

resource "aws_security_group" "nlb" {
  #checkov:skip=CKV2_AWS_5:Attached to the NLB (modules/front_door) through this module's outputs, which checkov does not follow across modules.
  name        = "${var.name}-nlb"
  description = "Fjord public NLB: the public HTTP(S) port from anywhere"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name}-nlb" }
}

resource "aws_security_group" "lb" {
  #checkov:skip=CKV2_AWS_5:Attached to the fjord-lb launch template (modules/front_door) through this module's outputs, which checkov does not follow across modules.
  name        = "${var.name}-lb"
  description = "Fjord fjord-lb replicas: traffic from the NLB only"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name}-lb" }
}

resource "aws_security_group" "nodes" {
  #checkov:skip=CKV2_AWS_5:Attached to the node launch template (modules/node_group) through this module's outputs, which checkov does not follow across modules.
  name        = "${var.name}-nodes"
  description = "Fjord agent nodes: invoke port from fjord-lb and the control plane only"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name}-nodes" }
}

resource "aws_security_group" "control_plane" {
  #checkov:skip=CKV2_AWS_5:Attached to the control-plane instances (modules/control_plane) through this module's outputs, which checkov does not follow across modules.
  name        = "${var.name}-control-plane"
  description = "Fjord control plane: gRPC port from inside the VPC; NATS from fjord-lb and the members"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name}-control-plane" }
}

# --- NLB -----------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "nlb_public" {
  security_group_id = aws_security_group.nlb.id
  description       = "Public HTTP(S) from anywhere"
  ip_protocol       = "tcp"
  from_port         = var.public_port
  to_port           = var.public_port
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_lb" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "Forward traffic and health checks to fjord-lb"
  ip_protocol                  = "tcp"
  from_port                    = var.lb_port
  to_port                      = var.lb_port
  referenced_security_group_id = aws_security_group.lb.id
}

# --- fjord-lb ------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "lb_from_nlb" {
  security_group_id            = aws_security_group.lb.id
  description                  = "Client traffic and health checks from the NLB"
  ip_protocol                  = "tcp"
  from_port                    = var.lb_port
  to_port                      = var.lb_port
  referenced_security_group_id = aws_security_group.nlb.id
}

# --- agent nodes ----------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "nodes_from_lb" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "Invocations from fjord-lb"
  ip_protocol                  = "tcp"
  from_port                    = var.invoke_port
  to_port                      = var.invoke_port
  referenced_security_group_id = aws_security_group.lb.id
}

resource "aws_vpc_security_group_ingress_rule" "nodes_from_control_plane" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "Probes from the control plane"
  ip_protocol                  = "tcp"
  from_port                    = var.invoke_port
  to_port                      = var.invoke_port
  referenced_security_group_id = aws_security_group.control_plane.id
}

# --- control plane ----------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "control_plane_from_vpc" {
  security_group_id = aws_security_group.control_plane.id
  description       = "gRPC (admin, agents, fjord-lb, Raft) from inside the VPC"
  ip_protocol       = "tcp"
  from_port         = var.admin_port
  to_port           = var.admin_port
  cidr_ipv4         = aws_vpc.this.cidr_block
}

# NATS JetStream (fjord-nats.service) on the members: clients are fjord-lb (enqueue,
# workers) and the control plane (scheduled ticks, queue depth); routes only between the
# members.
resource "aws_vpc_security_group_ingress_rule" "nats_from_lb" {
  security_group_id            = aws_security_group.control_plane.id
  description                  = "NATS clients: fjord-lb enqueues and consumes asynchronous calls"
  ip_protocol                  = "tcp"
  from_port                    = var.nats_port
  to_port                      = var.nats_port
  referenced_security_group_id = aws_security_group.lb.id
}

resource "aws_vpc_security_group_ingress_rule" "nats_from_control_plane" {
  security_group_id            = aws_security_group.control_plane.id
  description                  = "NATS clients: the control plane fires scheduled ticks and reads queue depth"
  ip_protocol                  = "tcp"
  from_port                    = var.nats_port
  to_port                      = var.nats_port
  referenced_security_group_id = aws_security_group.control_plane.id
}

resource "aws_vpc_security_group_ingress_rule" "nats_routes" {
  security_group_id            = aws_security_group.control_plane.id
  description                  = "NATS routes between the members (JetStream replication)"
  ip_protocol                  = "tcp"
  from_port                    = var.nats_cluster_port
  to_port                      = var.nats_cluster_port
  referenced_security_group_id = aws_security_group.control_plane.id
}

# --- egress shared by the instance groups ---------------------------------------------

locals {
  instance_groups = {
    lb            = aws_security_group.lb.id
    nodes         = aws_security_group.nodes.id
    control_plane = aws_security_group.control_plane.id
  }
}

resource "aws_vpc_security_group_egress_rule" "to_vpc" {
  for_each = local.instance_groups

  security_group_id = each.value
  description       = "Any TCP inside the VPC (control plane, agents)"
  ip_protocol       = "tcp"
  from_port         = 1
  to_port           = 65535
  cidr_ipv4         = aws_vpc.this.cidr_block
}

resource "aws_vpc_security_group_egress_rule" "https_out" {
  for_each = local.instance_groups

  security_group_id = each.value
  description       = "HTTPS out: release download, ECR, SSM, image registries"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "http_out" {
  for_each = local.instance_groups

  security_group_id = each.value
  description       = "HTTP out: distribution package mirrors"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}
