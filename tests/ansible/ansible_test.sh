#!/bin/bash
# The Ansible roles (ansible/), for real but into a scratch directory: site.yml deploys a
# coordinator and an agent (two inventory hosts, both local) under a farm_root per host, with
# TLS; the test checks what was written, has systemd-analyze verify the units, starts the
# coordinator and the agent from their units' ExecStart lines with the TLS material the roles
# made, sees the agent connect (farm agents, /metrics), then runs the playbook again and wants
# nothing changed.
#
#   tests/ansible/ansible_test.sh BIN_DIR      (BIN_DIR: the build's farm, farm-coordinator,
#                                               farm-agent)
# Exit 0 passed, 1 failed, 77 skipped (no ansible-playbook). Needs no network and no root;
# writes nothing outside its temporary directory (kept when FARM_TEST_KEEP is set).
set -uo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:?usage: ansible_test.sh BIN_DIR}
bin=$(cd "$bin" && pwd)
playbook=$src/ansible/site.yml

if ! command -v ansible-playbook >/dev/null; then
  echo "SKIPPED: ansible-playbook is not installed (apt-get install ansible-core)"
  exit 77
fi
for b in farm farm-coordinator farm-agent; do
  if [ ! -x "$bin/$b" ]; then
    echo "FAILED: $bin/$b is missing: build it first"
    exit 1
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/farm-ansible.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "${FARM_TEST_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

checked=()
ok() { checked+=("$*"); }
fail() {
  echo "FAILED: $*"
  exit 1
}
# fail_log FILE MESSAGE: the message, then the file's last lines.
fail_log() {
  echo "FAILED: $2 ($1):"
  tail -n 60 "$1" | sed 's/^/    /'
  exit 1
}

start=$(date +%s)
coord=$tmp/coord    # the coordinator host's farm_root
agent=$tmp/agent1   # the agent host's farm_root
pki=$tmp/pki        # the controller's farm_pki_dir

# Two free loopback ports: the coordinator's gRPC and metrics.
read -r port mport < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

# Hermetic Ansible: no user or system configuration, its temporary files here, and no
# collections (the roles use ansible.builtin only, as in Debian's ansible-core alone).
mkdir -p "$tmp/ansible-home" "$tmp/no-collections"
cat > "$tmp/ansible.cfg" <<EOF
[defaults]
home = $tmp/ansible-home
local_tmp = $tmp/ansible-home/tmp
remote_tmp = $tmp/ansible-home/remote-tmp
collections_path = $tmp/no-collections
collections_scan_sys_path = False
retry_files_enabled = False
interpreter_python = auto_silent
nocolor = True
EOF
export ANSIBLE_CONFIG=$tmp/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
unset ANSIBLE_INVENTORY ANSIBLE_ROLES_PATH ANSIBLE_COLLECTIONS_PATH

cat > "$tmp/inventory.ini" <<EOF
[farm_coordinator]
coord ansible_host=127.0.0.1 ansible_connection=local farm_root=$coord

[farm_agents]
agent1 ansible_connection=local farm_root=$agent

[all:vars]
ansible_python_interpreter=$(command -v python3)
EOF
cat > "$tmp/vars.yml" <<EOF
farm_manage_services: false
farm_install_packages: false
farm_binaries_dir: $bin
farm_pki_dir: $pki
farm_coordinator_port: $port
farm_coordinator_listen: 127.0.0.1:$port
farm_coordinator_metrics_listen: 127.0.0.1:$mport
farm_token_users: [admin]
EOF
play() { ansible-playbook -i "$tmp/inventory.ini" -e "@$tmp/vars.yml" "$playbook"; }

# 1. Syntax.
ansible-playbook -i "$tmp/inventory.ini" --syntax-check "$playbook" > "$tmp/syntax.log" 2>&1 ||
  fail_log "$tmp/syntax.log" "ansible-playbook --syntax-check"
ok "ansible-playbook --syntax-check site.yml"

# 2. First run.
play > "$tmp/run1.log" 2>&1 || fail_log "$tmp/run1.log" "the first ansible-playbook run failed"
ok "site.yml ran (coordinator 'coord' and agent 'agent1', connection local, farm_root per host)"

# 3. What was written, and with which modes.
# want ROOT PATH MODE: a regular file (or a directory when MODE starts with d) with that mode.
want() {
  local f=$1$2 mode
  if [ "${3:0:1}" = d ]; then
    [ -d "$f" ] || fail "$f is not a directory"
    mode=d$(stat -c %a "$f")
  else
    [ -f "$f" ] || fail "$f is missing"
    mode=$(stat -c %a "$f")
  fi
  [ "$mode" = "$3" ] || fail "$f has mode $mode, want $3"
}
for root in "$coord" "$agent"; do
  for b in farm farm-coordinator farm-agent; do
    want "$root" "/usr/local/bin/$b" 755
    cmp -s "$bin/$b" "$root/usr/local/bin/$b" || fail "$root/usr/local/bin/$b differs from $bin/$b"
  done
  want "$root" /var/lib/farm d750
  want "$root" /etc/farm/tls d750
  want "$root" /etc/farm/tls/ca.pem 644
  want "$root" /etc/profile.d/farm.sh 644
  cmp -s "$pki/ca.pem" "$root/etc/farm/tls/ca.pem" || fail "$root/etc/farm/tls/ca.pem is not the CA"
done
ok "binaries installed (0755, identical to $bin), /var/lib/farm 0750, /etc/farm/tls 0750, ca.pem"
want "$coord" /etc/systemd/system/farm-coordinator.service 644
want "$coord" /etc/farm/tls/server.pem 644
want "$coord" /etc/farm/tls/server.key 600
want "$coord" /etc/farm/tokens 600
want "$agent" /etc/systemd/system/farm-agent.service 644
want "$agent" /etc/farm/tls/agent.pem 644
want "$agent" /etc/farm/tls/agent.key 600
want "$agent" /var/lib/farm/agent d750
want "$agent" /var/lib/farm/ccache d750
want "$agent" /var/lib/farm/ccache/ccache.conf 644
grep -qx "max_size = 20G" "$agent/var/lib/farm/ccache/ccache.conf" || fail "ccache.conf has no max_size"
for f in "$coord/etc/systemd/system/farm-agent.service" "$coord/etc/farm/tls/agent.key" \
         "$agent/etc/systemd/system/farm-coordinator.service" "$agent/etc/farm/tls/server.key" \
         "$agent/etc/farm/tokens"; do
  [ ! -e "$f" ] || fail "$f should not exist: that host has no such role"
done
ok "coordinator: unit 0644, server.pem 0644, server.key 0600, tokens 0600; agent: unit, agent.key 0600, work dir and ccache 0750, ccache.conf; nothing of the other role"
want "$pki" /ca.key 600
want "$pki" /tokens/admin.token 600
want "$pki" /coord/server.key 600
want "$pki" /agent1/agent.key 600
grep -qxF "$(cat "$pki/tokens/admin.token")" "$coord/etc/farm/tokens" ||
  fail "the coordinator's tokens file lacks the admin token"
openssl verify -CAfile "$pki/ca.pem" "$coord/etc/farm/tls/server.pem" "$agent/etc/farm/tls/agent.pem" \
  > "$tmp/verify.log" 2>&1 || fail_log "$tmp/verify.log" "openssl verify"
sans=$(openssl x509 -in "$coord/etc/farm/tls/server.pem" -noout -ext subjectAltName 2>&1)
for n in "IP Address:127.0.0.1" "DNS:coord" "DNS:localhost"; do
  [[ "$sans" == *"$n"* ]] || fail "the server certificate lacks $n: $sans"
done
openssl x509 -in "$agent/etc/farm/tls/agent.pem" -noout -ext extendedKeyUsage 2>&1 |
  grep -q "TLS Web Client Authentication" || fail "the agent certificate is not for client auth"
ok "controller PKI: ca.key, keys and token 0600; both certificates verify against the CA; server SANs include 127.0.0.1, coord, localhost; agent certificate for client auth"

# 4. systemd-analyze verify, with the root's own binaries (ExecStart must exist there) and the
# host's system units for the dependencies (network-online.target, ...).
if command -v systemd-analyze >/dev/null && [ -e /lib/systemd/system/sysinit.target ]; then
  for pair in "$coord:farm-coordinator.service" "$agent:farm-agent.service"; do
    root=${pair%%:*} unit=${pair#*:}
    mkdir -p "$root/usr/lib/systemd"
    ln -sfn /lib/systemd/system "$root/usr/lib/systemd/system"
    systemd-analyze verify --man=no --root="$root" "$unit" > "$tmp/analyze.log" 2>&1 ||
      fail_log "$tmp/analyze.log" "systemd-analyze verify $unit"
    # It warns (and still exits 0) about unknown keys and values it cannot parse.
    if grep -q "$unit" "$tmp/analyze.log"; then
      fail_log "$tmp/analyze.log" "systemd-analyze verify warns about $unit"
    fi
    rm "$root/usr/lib/systemd/system"
  done
  ok "systemd-analyze verify --root accepts both units (no warnings; ExecStart binaries exist in farm_root)"
else
  echo "skipped: systemd-analyze verify (systemd-analyze or the system's units are missing)"
fi

# 5. The units' command lines, run for real: ExecStart with every absolute path moved under
# that host's farm_root.
# exec_start ROOT UNIT: prints the arguments NUL-separated.
exec_start() {
  python3 - "$1" "$2" <<'PY'
import shlex, sys
root, unit = sys.argv[1], sys.argv[2]
text = open(root + "/etc/systemd/system/" + unit).read().replace("\\\n", " ")
lines = [l for l in text.splitlines() if l.startswith("ExecStart=")]
if len(lines) != 1:
    sys.exit("want one ExecStart= line in %s, found %d" % (unit, len(lines)))
args = shlex.split(lines[0][len("ExecStart="):].replace("%%", "%"))
sys.stdout.write("\0".join(root + a if a.startswith("/") else a for a in args) + "\0")
PY
}
mapfile -d '' coord_cmd < <(exec_start "$coord" farm-coordinator.service)
mapfile -d '' agent_cmd < <(exec_start "$agent" farm-agent.service)
if [ ${#coord_cmd[@]} -lt 2 ] || [ ${#agent_cmd[@]} -lt 2 ]; then
  fail "cannot read the units' ExecStart"
fi
echo "coordinator: ${coord_cmd[*]}"
echo "agent:       ${agent_cmd[*]}"
(cd "$coord/var/lib/farm" && exec "${coord_cmd[@]}") > "$tmp/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q "listening on" "$tmp/coordinator.log" && break
  kill -0 "${pids[0]}" 2>/dev/null || fail_log "$tmp/coordinator.log" "farm-coordinator exited"
  sleep 0.2
done
grep -q "listening on 127.0.0.1:$port (database $coord/var/lib/farm/farm.db, TLS, agents need client certificates, clients need tokens)" \
  "$tmp/coordinator.log" || fail_log "$tmp/coordinator.log" "farm-coordinator did not say it serves TLS with client certificates and tokens"
ok "farm-coordinator started from its unit's ExecStart: TLS, client certificates, tokens, database under /var/lib/farm"
(cd "$agent/var/lib/farm/agent" && exec "${agent_cmd[@]}") > "$tmp/agent.log" 2>&1 &
pids+=($!)

# The farm CLI as the profile script sets it up (FARM_COORDINATOR, FARM_TLS_CA), with the token.
# shellcheck disable=SC1091
. "$agent/etc/profile.d/farm.sh"
[ "$FARM_COORDINATOR" = "127.0.0.1:$port" ] || fail "profile.d/farm.sh sets FARM_COORDINATOR=$FARM_COORDINATOR"
export FARM_COORDINATOR FARM_TLS_CA=$agent$FARM_TLS_CA
farm_cli=$coord/usr/local/bin/farm
slots=""
for i in "${!agent_cmd[@]}"; do
  [ "${agent_cmd[$i]}" = --slots ] && slots=${agent_cmd[$((i + 1))]}
done
[[ "$slots" =~ ^[1-9][0-9]*$ ]] || fail "the agent's unit gives no --slots"
connected=""
for _ in $(seq 150); do
  "$farm_cli" --token-file "$pki/tokens/admin.token" agents > "$tmp/agents.txt" 2>&1
  if grep -Eq "^agent1 +connected +slots=$slots " "$tmp/agents.txt"; then
    connected=yes
    break
  fi
  kill -0 "${pids[1]}" 2>/dev/null || fail_log "$tmp/agent.log" "farm-agent exited"
  sleep 0.2
done
[ -n "$connected" ] || {
  cat "$tmp/agents.txt" "$tmp/coordinator.log"
  fail_log "$tmp/agent.log" "the agent never showed as connected with slots=$slots in farm agents"
}
ok "farm-agent started from its unit's ExecStart connected over mTLS: farm agents (token, FARM_TLS_CA from profile.d) says: $(head -1 "$tmp/agents.txt" | tr -s ' ')"
if "$farm_cli" agents > "$tmp/no-token.txt" 2>&1; then
  fail "farm agents without a token was let in"
fi
grep -q "valid token is required" "$tmp/no-token.txt" || fail "farm agents without a token: $(cat "$tmp/no-token.txt")"
ok "farm agents without a token is refused"
python3 -c "import urllib.request, sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$mport/metrics', timeout=10).read().decode())" \
  > "$tmp/metrics.txt" 2>&1 || fail_log "$tmp/metrics.txt" "GET /metrics"
if ! grep -Eq "^farm_agents_connected 1$" "$tmp/metrics.txt" ||
   ! grep -Eq "^farm_slots $slots$" "$tmp/metrics.txt"; then
  fail_log "$tmp/metrics.txt" "/metrics does not count the agent"
fi
ok "metrics at 127.0.0.1:$mport: farm_agents_connected 1, farm_slots $slots"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
pids=()

# 6. Idempotence: a second run changes nothing (and regenerates no certificate).
sum_before=$(cat "$pki"/ca.pem "$pki"/*/*.pem "$pki"/tokens/* | sha256sum)
play > "$tmp/run2.log" 2>&1 || fail_log "$tmp/run2.log" "the second ansible-playbook run failed"
recap=$(sed -n '/^PLAY RECAP/,$p' "$tmp/run2.log")
for h in coord agent1; do
  line=$(grep -E "^$h +:" <<< "$recap") || fail_log "$tmp/run2.log" "no PLAY RECAP line for $h"
if ! [[ "$line" =~ changed=0\ .*unreachable=0\ .*failed=0\  ]]; then
    grep -B2 -A8 "^changed:" "$tmp/run2.log" | head -60
    fail "the second run is not idempotent: $(tr -s ' ' <<< "$line")"
  fi
done
[ "$sum_before" = "$(cat "$pki"/ca.pem "$pki"/*/*.pem "$pki"/tokens/* | sha256sum)" ] ||
  fail "the second run changed the certificates or tokens"
ok "second run: changed=0 failed=0 for coord and agent1; CA, certificates and tokens untouched"

echo "PASSED in $(($(date +%s) - start))s. Checked:"
for c in "${checked[@]}"; do echo "  - $c"; done
