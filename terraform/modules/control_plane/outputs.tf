output "urls" {
  description = "gRPC URLs of the members, member 1 first (for --control-plane and FJORD_ADDR)."
  value       = [for id in local.member_ids : "http://${local.members[tostring(id)].advertise}"]
}

output "nats_urls" {
  description = "NATS URLs of the JetStream servers on the members, member 1 first (for --nats-url)."
  value       = local.nats_urls
}

output "private_ips" {
  description = "Fixed private IPs of the members, member 1 first."
  value       = [for id in local.member_ids : local.members[tostring(id)].ip]
}

output "initial_members" {
  description = "The --initial-members value member 1 bootstrapped with (id=host:port,...)."
  value       = local.initial_members
}

output "instance_ids" {
  description = "Instance ids of the members, member 1 first."
  value       = [for id in local.member_ids : aws_instance.member[tostring(id)].id]
}

output "data_volume_ids" {
  description = "EBS data volume ids, member 1 first."
  value       = [for id in local.member_ids : aws_ebs_volume.data[tostring(id)].id]
}

output "nats_volume_ids" {
  description = "EBS volume ids of the NATS JetStream stores, member 1 first."
  value       = [for id in local.member_ids : aws_ebs_volume.nats[tostring(id)].id]
}
