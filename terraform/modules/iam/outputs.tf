output "control_plane_instance_profile_name" {
  description = "Instance profile of the control-plane members."
  value       = aws_iam_instance_profile.this["control-plane"].name
}

output "node_instance_profile_name" {
  description = "Instance profile of the agent nodes."
  value       = aws_iam_instance_profile.this["node"].name
}

output "lb_instance_profile_name" {
  description = "Instance profile of the fjord-lb replicas."
  value       = aws_iam_instance_profile.this["lb"].name
}

output "control_plane_role_arn" {
  description = "Role of the control-plane members."
  value       = aws_iam_role.this["control-plane"].arn
}

output "node_role_arn" {
  description = "Role of the agent nodes."
  value       = aws_iam_role.this["node"].arn
}

output "lb_role_arn" {
  description = "Role of the fjord-lb replicas."
  value       = aws_iam_role.this["lb"].arn
}
