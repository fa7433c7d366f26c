#!/usr/bin/env bash
# Installs the Tally agent on a Debian or Ubuntu host, as root. It installs tcpdump (apt), creates
# the system user tally-agent (no login shell, no home), installs the bundled agent as
# /opt/tally/tally-agent.mjs, /etc/tally/agent.yaml from deploy/agent/agent.yaml (only if absent),
# the systemd unit deploy/systemd/tally-agent.service, then enables and starts it.
#
# It downloads nothing from the internet itself: Node.js 22.12 or newer must already be installed.
# Build the bundle with `npm run build:agent` (dist/tally-agent.mjs), copy it and deploy/ to the
# host, then:
#
#   sudo deploy/agent/install.sh --dry-run dist/tally-agent.mjs    # print what it would do
#   sudo deploy/agent/install.sh --collector-url https://tally.example.org \
#     --token-file site.token dist/tally-agent.mjs
#
# Run it again with a newer bundle to upgrade: the configuration and the agent's state are kept and
# a running service is restarted.
set -euo pipefail

readonly SERVICE=tally-agent
readonly USER_NAME=tally-agent
readonly PREFIX=/opt/tally
readonly CONFIG_DIR=/etc/tally
readonly STATE_DIR=/var/lib/tally-agent
readonly BUNDLE_TARGET=$PREFIX/tally-agent.mjs
readonly CONFIG_TARGET=$CONFIG_DIR/agent.yaml
readonly TOKEN_TARGET=$CONFIG_DIR/enroll.token
readonly UNIT_TARGET=/etc/systemd/system/$SERVICE.service
# The collector URL of deploy/agent/agent.yaml; while a config still has it the service is not started.
readonly PLACEHOLDER_URL=http://tally-collector.invalid:8080
readonly MIN_NODE_MAJOR=22 MIN_NODE_MINOR=12

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

usage() {
  cat <<EOF
Usage: $0 [options] [BUNDLE]

Installs the Tally agent on this Debian/Ubuntu host (as root). BUNDLE is the file made by
\`npm run build:agent\`; by default tally-agent.mjs next to this script, else dist/tally-agent.mjs.

Options:
  --dry-run              print what would be done, change nothing (needs no root)
  --collector-url URL    collector.url for a newly installed $CONFIG_TARGET
  --token-file FILE      site enrollment token (from \`tally admin enroll-token --site NAME\`),
                         installed as $TOKEN_TARGET
  --unit FILE            the systemd unit (default: ../systemd/$SERVICE.service next to this script)
  -h, --help             this text
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}

dry_run=false
bundle=''
unit=$here/../systemd/$SERVICE.service
example=$here/agent.yaml
collector_url=''
token_file=''

while (($# > 0)); do
  case $1 in
    --dry-run) dry_run=true ;;
    --collector-url | --token-file | --unit)
      (($# >= 2)) || die "$1 needs a value (see --help)"
      case $1 in
        --collector-url) collector_url=$2 ;;
        --token-file) token_file=$2 ;;
        --unit) unit=$2 ;;
      esac
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      [[ -z $bundle ]] || die "one bundle only, got $bundle and $1"
      bundle=$1
      ;;
  esac
  shift
done

# Prints a command and runs it, or only prints it with --dry-run.
run() {
  show "$@"
  if ! $dry_run; then "$@"; fi
}
show() {
  local line
  printf -v line '%q ' "$@"
  printf '+ %s\n' "${line% }"
}

# A prerequisite that is not met: fatal, except in a dry run, which goes on to show the rest.
unmet() {
  if $dry_run; then
    printf 'install.sh: dry run: a real run would stop here: %s\n' "$*" >&2
  else
    die "$*"
  fi
}

# --- What is needed, checked before anything is changed -------------------------------------------

((EUID == 0)) || unmet "run this as root (sudo $0 ...)"
if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
  unmet 'this installer is for Debian and Ubuntu (apt-get, dpkg)'
fi
if ! command -v systemctl >/dev/null || [[ ! -d /run/systemd/system ]]; then
  unmet 'systemd is not running on this host (no systemctl or /run/systemd/system)'
fi

if [[ -z $bundle ]]; then
  bundle=$here/tally-agent.mjs
  [[ -f $bundle ]] || bundle=$here/../../dist/tally-agent.mjs
fi
[[ -f $bundle ]] || die "no agent bundle at $bundle: build it with \`npm run build:agent\` and pass dist/tally-agent.mjs"
[[ -f $example ]] || die "the example configuration $example is missing"
[[ -f $unit ]] || die "the systemd unit $unit is missing (deploy/systemd/$SERVICE.service, or pass --unit FILE)"
grep -q "$BUNDLE_TARGET" "$unit" || warn "$unit does not mention $BUNDLE_TARGET, where this installs the agent"
if [[ -n $token_file ]]; then
  [[ -f $token_file && -r $token_file ]] || die "cannot read the token file $token_file"
fi
if [[ -n $collector_url ]] && [[ ! $collector_url =~ ^https?://[^[:space:]\|\&\\]+$ ]]; then
  die "--collector-url must be an http:// or https:// URL, not $collector_url"
fi

# The Node.js the unit runs: the program its ExecStart names, or `node` on PATH when it names none
# (the bundle run directly, through its #!/usr/bin/env node line).
exec_start=$(sed -n 's/^[[:space:]]*ExecStart=[-@:+!]*//p' "$unit" | head -n 1)
read -r program first_argument _ <<<"$exec_start" || true
case ${program:-} in
  */env) node_bin=$(command -v "${first_argument:-node}" || echo "${first_argument:-node}") ;;
  */node | */nodejs) node_bin=$program ;;
  *) node_bin=$(command -v node || echo node) ;;
esac
node_version=$("$node_bin" --version 2>/dev/null || true)
if [[ $node_version =~ ^v([0-9]+)\.([0-9]+)\. ]] &&
  ((BASH_REMATCH[1] > MIN_NODE_MAJOR || (BASH_REMATCH[1] == MIN_NODE_MAJOR && BASH_REMATCH[2] >= MIN_NODE_MINOR))); then
  say "Node.js $node_version at $node_bin"
else
  unmet "the agent needs Node.js $MIN_NODE_MAJOR.$MIN_NODE_MINOR or newer at $node_bin (the node the unit runs), found ${node_version:-none}.
  This installer downloads nothing; install Node.js first, then run it again:
  - NodeSource's Debian/Ubuntu packages (https://github.com/nodesource/distributions): add the
    repository for Node.js 22.x or newer, then apt-get install nodejs; or
  - the distribution's nodejs package, where its version is $MIN_NODE_MAJOR.$MIN_NODE_MINOR or newer (apt-cache policy nodejs).
  If Node.js is installed elsewhere, point the unit's ExecStart at it."
fi

# --- Installation ----------------------------------------------------------------------------------

# tcpdump: the agent captures packet headers through it (tcpdump -s 128).
# shellcheck disable=SC2016 # ${Status} is dpkg-query's, not the shell's
if dpkg-query -W -f='${Status}' tcpdump 2>/dev/null | grep -q 'install ok installed'; then
  say 'tcpdump is installed'
else
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tcpdump
fi

if getent passwd "$USER_NAME" >/dev/null; then
  say "user $USER_NAME exists"
else
  run useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment 'Tally agent' "$USER_NAME"
fi

run install -d -m 0755 -o root -g root "$PREFIX" "$CONFIG_DIR"
run install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE_DIR"
run install -m 0755 -o root -g root "$bundle" "$BUNDLE_TARGET"

config_created=false
if [[ -e $CONFIG_TARGET ]]; then
  say "keeping the existing $CONFIG_TARGET"
else
  run install -m 0640 -o root -g "$USER_NAME" "$example" "$CONFIG_TARGET"
  config_created=true
fi
# Whether the configuration still names no real collector (as deploy/agent/agent.yaml does).
has_placeholder() {
  if $config_created && $dry_run; then grep -qF "$PLACEHOLDER_URL" "$example"; else grep -qF "$PLACEHOLDER_URL" "$CONFIG_TARGET"; fi
}
if [[ -n $collector_url ]]; then
  if has_placeholder; then
    run sed -i "s|$PLACEHOLDER_URL|$collector_url|" "$CONFIG_TARGET"
    collector_set=true
  else
    warn "--collector-url ignored: $CONFIG_TARGET already names a collector; edit collector.url there"
  fi
fi
if [[ -n $token_file ]]; then
  run install -m 0640 -o root -g "$USER_NAME" "$token_file" "$TOKEN_TARGET"
elif [[ ! -e $STATE_DIR/credential.json && ! -e $TOKEN_TARGET ]]; then
  warn "the agent is not enrolled and $TOKEN_TARGET does not exist: unless $CONFIG_TARGET sets enrollment.token, it cannot enroll (pass --token-file FILE)"
fi

run install -m 0644 -o root -g root "$unit" "$UNIT_TARGET"
# The configuration as the service will read it: valid, and readable by its user.
show runuser -u "$USER_NAME" -- "$node_bin" "$BUNDLE_TARGET" check -c "$CONFIG_TARGET"
if ! $dry_run; then
  runuser -u "$USER_NAME" -- "$node_bin" "$BUNDLE_TARGET" check -c "$CONFIG_TARGET" >/dev/null ||
    die "$CONFIG_TARGET is not a valid agent configuration (see above); fix it and run this again"
fi

was_active=false
if command -v systemctl >/dev/null && systemctl is-active --quiet "$SERVICE" 2>/dev/null; then was_active=true; fi
run systemctl daemon-reload
if [[ -z ${collector_set:-} ]] && has_placeholder; then
  run systemctl enable "$SERVICE"
  say "enabled but not started: set collector.url in $CONFIG_TARGET (and the enrollment token), then: systemctl start $SERVICE"
  if $dry_run; then say 'dry run: nothing was changed'; fi
  exit 0
fi
run systemctl enable --now "$SERVICE"
# A service that was already running still runs the previous bundle.
if $was_active; then run systemctl restart "$SERVICE"; fi
if $dry_run; then
  say 'dry run: nothing was changed'
else
  say "$SERVICE is installed and started; its log: journalctl -u $SERVICE -f"
fi
