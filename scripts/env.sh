# Sourced by scripts/dev and scripts/simulate: variable precedence for local runs.
# The environment wins, then .env (if present), then the local stack, then local defaults.

# The settings with two names (lib/src/configuration.rs, ALIASES): a default for one name is
# never applied when the user set the other, so that a local default never shadows what the
# user set, whatever name they used.
ALIASES=(
  SUPABASE_SECRET_KEY:SUPABASE_SERVICE_ROLE_KEY
  SUPABASE_PUBLISHABLE_KEY:SUPABASE_ANON_KEY
  STRIPE_WEBHOOK_SECRET:STRIPE_WEBHOOK_SECRETS
)

# The other name of NAME's setting, if it has one.
alias_of() {
  local pair
  for pair in "${ALIASES[@]}"; do
    if [ "${pair%%:*}" = "$1" ]; then echo "${pair#*:}"; return; fi
    if [ "${pair#*:}" = "$1" ]; then echo "${pair%%:*}"; return; fi
  done
}

# Sets NAME=VALUE unless NAME, or its other name, already has a non-empty value.
default() {
  local name=${1%%=*} other
  other=$(alias_of "$name")
  if [ -n "${!name:-}" ] || { [ -n "$other" ] && [ -n "${!other:-}" ]; }; then return 0; fi
  export "$1"
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
