output "name" {
  description = "Name of the nodes' Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "arn" {
  description = "ARN of the nodes' Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}

output "launch_template_id" {
  description = "Launch template of the nodes."
  value       = aws_launch_template.this.id
}

output "lifecycle_hook_name" {
  description = "Name of the termination lifecycle hook the control plane completes after draining a node."
  value       = local.lifecycle_hook_name
}
