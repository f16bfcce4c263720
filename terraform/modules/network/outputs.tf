output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "availability_zones" {
  description = "The AZs in use, in subnet order."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "Public subnets (NLB, NAT gateways), one per AZ."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (control plane, agent nodes, fjord-lb), one per AZ."
  value       = aws_subnet.private[*].id
}

output "private_subnet_cidrs" {
  description = "CIDR blocks of the private subnets, in the same order as private_subnet_ids."
  value       = aws_subnet.private[*].cidr_block
}

output "nlb_security_group_id" {
  description = "Security group of the public NLB."
  value       = aws_security_group.nlb.id
}

output "lb_security_group_id" {
  description = "Security group of the fjord-lb instances."
  value       = aws_security_group.lb.id
}

output "node_security_group_id" {
  description = "Security group of the agent nodes."
  value       = aws_security_group.nodes.id
}

output "control_plane_security_group_id" {
  description = "Security group of the control-plane members."
  value       = aws_security_group.control_plane.id
}
