# Sourced by scripts/dev and scripts/simulate: variable precedence for local runs.
# The environment wins, then .env (if present), then the local stack, then local defaults.

# Sets NAME=VALUE unless NAME already has a non-empty value.
default() {
  local name=${1%%=*}
  if [ -z "${!name:-}" ]; then export "$1"; fi
}

# Loads .env without overriding what the environment already set.
load_dotenv() {
  [ -f .env ] || return 0
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    [[ "$line" == *=* ]] && [ -n "${line#*=}" ] && default "$line"
  done <.env
}

# The local stack's variables, then the local defaults of the webhook secrets.
load_local_defaults() {
  local line
  while IFS= read -r line; do default "${line#export }"; done < <(scripts/stack env)
  default WHATSAPP_APP_SECRET=local-app-secret
  default WHATSAPP_VERIFY_TOKEN=local-verify-token
  default STRIPE_WEBHOOK_SECRETS=whsec_local
}
