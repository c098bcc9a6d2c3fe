#!/usr/bin/env bash
# Runs `fileintel-bench lookups` against a PostgreSQL of its own, configured the way a production server
# on this machine would be, and stops and removes that server afterwards. The machine's shared
# PostgreSQL keeps Debian's defaults (128 MB of shared buffers, a checkpoint every 1 GB of WAL),
# which nobody would serve ten million files from and which are not ours to change.
#
#   scripts/bench-own-postgres.sh FILES OUT.json [more fileintel-bench lookups flags]
#
# Durability stays as in production: fsync, full-page writes and synchronous commit are on. What
# changes is memory and checkpoint spacing (see SETTINGS below), the usual first tuning of a
# write-heavy server: with 1 GB between checkpoints, every random page an import dirties is
# written to the WAL whole again after each checkpoint.
set -euo pipefail

files=${1:?usage: $0 FILES OUT.json [bench flags]}
out=${2:?usage: $0 FILES OUT.json [bench flags]}
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
exe=${FILEINTEL_EXE:-$here/target/release/fileintel}
bench=${FILEINTEL_BENCH_EXE:-$here/target/release/fileintel-bench}
[ -x "$exe" ] && [ -x "$bench" ] || { echo "build first: cargo build --release -p fileintel -p fileintel-bench" >&2; exit 2; }

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL's initdb was not found under /usr/lib/postgresql" >&2; exit 2; }

SETTINGS=(
    -c shared_buffers=6GB          # a quarter of the machine's memory
    -c effective_cache_size=16GB
    -c max_wal_size=16GB           # checkpoints by time, not by WAL volume
    -c min_wal_size=2GB
    -c checkpoint_timeout=15min
    -c wal_compression=lz4         # full-page images, compressed
    -c wal_buffers=64MB
    -c work_mem=16MB
    -c maintenance_work_mem=1GB
)

dir=$(mktemp -d /var/tmp/fileintel-pg-XXXXXX)
as_postgres=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    as_postgres=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
    "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT

"${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
"${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${SETTINGS[*]}" >/dev/null
echo "PostgreSQL of its own on 127.0.0.1:$port ($dir)" >&2

FILEINTEL_BIN="$exe" "$bench" lookups --files "$files" --database-url "postgres://postgres@127.0.0.1:$port/postgres" --out "$out" "$@"
