#!/bin/sh
# Prints .env.example with every empty secret filled with fresh random values:
#   deploy/docker/gen-env.sh > .env
# Values are URL-safe (they go into postgresql:// and amqp:// URLs). DEMO_PASSWORD stays as in the example
# (empty: the seed service generates one and prints it). Needs only a POSIX shell, od, base64 and tr.
set -eu
example="${1:-$(dirname "$0")/../../.env.example}"

hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
b64() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }
b64url() { b64 "$1" | tr '+/' '-_' | tr -d '='; }

while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    POSTGRES_PASSWORD=|PROFILE_DB_PASSWORD=|MFA_DB_PASSWORD=|NOTIFIER_DB_PASSWORD=|RABBITMQ_PASSWORD=)
      printf '%s%s\n' "$line" "$(hex 24)" ;;
    SERVICE_AUTH_KEY=|RECOVERY_CODE_KEY=)
      printf '%s%s\n' "$line" "$(b64url 48)" ;;
    MFA_ENCRYPTION_KEYS=|PROFILE_ENCRYPTION_KEYS=)
      printf '%sk1:%s\n' "$line" "$(b64 32)" ;;
    *)
      printf '%s\n' "$line" ;;
  esac
done < "$example"
