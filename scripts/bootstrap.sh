# Shared by ./run and ./test. Idempotent: each step checks before it installs.

log() { echo "==> $*" >&2; }

# Create .venv and install the package (editable) with the given extras, again only
# when pyproject.toml changed since the last install.
bootstrap_venv() {
  local extras="$1"
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    log "creating virtualenv in .venv"
    "$py" -m venv .venv
  fi
  local stamp=".venv/.snoozeql-installed${extras}"
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing snoozeql${extras} into .venv"
    # (pip's "Location ... is ignored" lines come from this machine's pip config: noise)
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 \
      | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    echo "$want" > "$stamp"
  fi
}

_apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: $*; install them with: sudo apt-get install -y $*"
    return 1
  fi
  if [ "$_apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    _apt_updated=1
  fi
  log "installing Debian packages: $*"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

# Server binaries the tests start as real processes, and a Compose implementation.
ensure_debian_packages() {
  local missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
}

_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_wait_port() {
  local port="$1" name="$2"
  for _ in $(seq 1 60); do
    _port_open "$port" && return 0
    sleep 0.5
  done
  log "$name did not come up on port $port"
  return 1
}

# The loopback services the store and provider tests talk to.
ensure_services() {
  if ! _port_open 5432; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    _wait_port 5432 PostgreSQL
  fi
  if ! _port_open 3306; then
    log "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    _wait_port 3306 MariaDB
  fi
  if ! _port_open 6379; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp
    _wait_port 6379 Redis
  fi
}
