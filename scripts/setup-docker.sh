#!/usr/bin/env bash
# Prepares a real Docker engine for the agent's end-to-end tests (crates/cli/tests/agent.rs).
#
# Idempotent: installs Debian's docker.io, busybox-static and auditd only when missing, starts
# dockerd and auditd only when not running (pids in /tmp/crowsnest-{dockerd,auditd}.pid), and imports
# the tiny `crowsnest-busybox:latest` image from busybox-static with `docker import` (no
# registry pulls). Needs root; does nothing harmful when run twice.
set -euo pipefail

log() { printf 'setup-docker: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "not root: skipping (the agent tests will fail under CI=true without a docker engine)"
  exit 0
fi

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || need+=(busybox-static)
command -v auditctl >/dev/null 2>&1 || need+=(auditd)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/tmp/crowsnest-dockerd.log 2>&1 &
  echo $! >/tmp/crowsnest-dockerd.pid
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /tmp/crowsnest-dockerd.log"; exit 1; }
fi

# Kernel audit for the agent's process attribution test: auditd writes /var/log/audit/audit.log.
if ! pidof auditd >/dev/null 2>&1; then
  log "starting auditd"
  if auditd >/tmp/crowsnest-auditd.log 2>&1; then
    sleep 1
    pidof auditd >/tmp/crowsnest-auditd.pid || true
  else
    log "auditd did not start (kernel audit unavailable?): $(tail -1 /tmp/crowsnest-auditd.log)"
  fi
fi

if ! docker image inspect crowsnest-busybox:latest >/dev/null 2>&1; then
  log "importing crowsnest-busybox:latest from busybox-static"
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - crowsnest-busybox:latest >/dev/null
fi
log "ready"
