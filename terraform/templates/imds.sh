# Reads one path of the EC2 instance metadata with an IMDSv2 session token.
imds() {
  local token
  token=$(curl --fail --silent -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)
  curl --fail --silent -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

# The aws CLI is on Amazon Linux; other distributions get it from their packages.
ensure_aws_cli() {
  command -v aws >/dev/null 2>&1 && return 0
  if command -v dnf >/dev/null 2>&1; then
    dnf install -y awscli
  else
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q awscli
  fi
}

# fetch_secret PARAMETER FILE: writes a SecureString parameter to a root-only file.
fetch_secret() {
  local tmp
  install -d -m 0755 /etc/fjord
  tmp=$(mktemp /etc/fjord/.secret.XXXXXX)
  chmod 0600 "$tmp"
  # The instance role can take a few seconds to be usable after boot.
  local attempt=1
  until aws ssm get-parameter --name "$1" --with-decryption --query Parameter.Value --output text >"$tmp"; do
    if [ "$attempt" -ge 10 ]; then
      rm -f "$tmp"
      echo "fetch_secret: cannot read SSM parameter $1" >&2
      return 1
    fi
    sleep $((attempt * 3))
    attempt=$((attempt + 1))
  done
  chown root:root "$tmp"
  mv -f "$tmp" "$2"
}
