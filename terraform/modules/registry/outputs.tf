output "repository_arn" {
  description = "ARN of the function image repository."
  value       = aws_ecr_repository.this.arn
}

output "repository_url" {
  description = "URL to push function images to."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_name" {
  description = "Name of the function image repository."
  value       = aws_ecr_repository.this.name
}
