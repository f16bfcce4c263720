output "public_endpoint" {
  description = "Where clients call functions: <public_endpoint>/function/<name>."
  value       = module.front_door.endpoint
}

output "admin_endpoint" {
  description = "FJORD_ADDR for the fjord CLI. It is a private address: use it from inside the VPC, or forward it with SSM Session Manager (see terraform/README.md)."
  value       = module.control_plane.urls[0]
}

output "admin_endpoints" {
  description = "All three control-plane members; any of them accepts admin calls (followers forward to the leader)."
  value       = module.control_plane.urls
}

output "nats_urls" {
  description = "The NATS JetStream servers on the control-plane members (--nats-url of fjord-lb and the control plane); reachable from fjord-lb and the members only."
  value       = module.control_plane.nats_urls
}

output "control_plane_instance_ids" {
  description = "Instance ids of the control-plane members, member 1 first (targets for SSM port forwarding)."
  value       = module.control_plane.instance_ids
}

output "node_group_name" {
  description = "Name of the agent nodes' Auto Scaling group, which the control plane scales."
  value       = module.node_group.name
}

output "registry_url" {
  description = "ECR repository for function images: docker push <registry_url>:<tag>."
  value       = module.registry.repository_url
}

output "admin_token_command" {
  description = "Shell command that prints the admin token (FJORD_TOKEN)."
  value       = "aws ssm get-parameter --region ${var.region} --name ${aws_ssm_parameter.admin_token.name} --with-decryption --query Parameter.Value --output text"
}

output "admin_port_forward_command" {
  description = "Shell command that forwards 127.0.0.1:7400 on your machine to control-plane member 1 through SSM Session Manager (needs enable_session_manager and the session-manager-plugin)."
  value       = "aws ssm start-session --region ${var.region} --target ${module.control_plane.instance_ids[0]} --document-name AWS-StartPortForwardingSession --parameters portNumber=7400,localPortNumber=7400"
}
