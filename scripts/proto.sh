#!/usr/bin/env bash
# The plugin protocol's generated code (core/internal/wire/pb), made with
# pinned generators so that anyone regenerates the same files.
#   proto.sh gen    regenerate the checked-in files
#   proto.sh check  regenerate into a temporary directory and fail if the
#                   checked-in files differ (make test runs this)
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_VERSION=3.21.12 # Debian's protobuf-compiler (bookworm and trixie)
GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GEN_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PB=core/internal/wire/pb
TOOLS=$PWD/bin/tools

die() { echo "proto.sh: $*" >&2; exit 1; }

tools() {
  command -v protoc >/dev/null 2>&1 || die "protoc not found: apt-get install protobuf-compiler (or: bash scripts/stack.sh deps)"
  local have
  have=$(protoc --version | awk '{print $2}')
  [[ $have == "$PROTOC_VERSION" ]] || die "protoc $have found; the checked-in files were made with $PROTOC_VERSION"
  GOBIN=$TOOLS go install "$GEN_GO"
  GOBIN=$TOOLS go install "$GEN_GRPC"
}

generate() { # into $1
  [[ $1 == "$PB" ]] || cp "$PB/mbk.proto" "$1/"
  (cd "$1" && PATH=$TOOLS:$PATH protoc --go_out=. --go_opt=paths=source_relative \
    --go-grpc_out=. --go-grpc_opt=paths=source_relative mbk.proto)
}

case "${1:-}" in
gen)
  tools
  generate "$PB"
  ;;
check)
  tools
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  generate "$tmp"
  for f in mbk.pb.go mbk_grpc.pb.go; do
    diff -u "$PB/$f" "$tmp/$f" >/dev/null || die "$PB/$f is not what mbk.proto generates: run 'make proto' and commit the result"
  done
  echo "proto.sh: $PB matches mbk.proto"
  ;;
*)
  echo "usage: $0 gen|check" >&2
  exit 2
  ;;
esac
