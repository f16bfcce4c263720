output "endpoint" {
  description = "Public base URL of the front door."
  value       = "${local.tls ? "https" : "http"}://${aws_lb.this.dns_name}"
}

output "nlb_dns_name" {
  description = "DNS name of the NLB (point your domain's CNAME or alias here)."
  value       = aws_lb.this.dns_name
}

output "nlb_zone_id" {
  description = "Route 53 hosted zone id of the NLB, for alias records."
  value       = aws_lb.this.zone_id
}

output "autoscaling_group_name" {
  description = "Auto Scaling group of the fjord-lb replicas."
  value       = aws_autoscaling_group.lb.name
}
