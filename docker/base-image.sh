#!/usr/bin/env bash
# Makes a local Debian bookworm base image for docker/Dockerfile where no registry can be
# reached (the Dockerfile's default base, python:3.11-slim, is pulled from Docker Hub):
#   docker/base-image.sh [TAG]        (default glint-base:bookworm; needs root and debootstrap)
#   docker build --network host --build-arg BASE=glint-base:bookworm -f docker/Dockerfile .
# A minimal bookworm with python3, python3-venv and ca-certificates, plus the host's CA bundle,
# so that pip inside the build trusts the same package index (or proxy) the host's pip does (the
# bundle stays in the images built on it: the runtime's own trust store).
# Does nothing when the image exists already.
set -euo pipefail
TAG="${1:-glint-base:bookworm}"
MIRROR="${GLINT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HOST_CA=/etc/ssl/certs/ca-certificates.crt

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG: present"
    exit 0
fi
root="$(mktemp -d /tmp/glint-base.XXXXXX)"
trap 'rm -rf "$root" "$root.log"' EXIT
echo "base image $TAG: debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
if [ -f "$HOST_CA" ]; then
    cp "$HOST_CA" "$root/etc/ssl/certs/ca-certificates.crt"
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import - "$TAG" >/dev/null
echo "base image $TAG: imported ($(docker image inspect -f '{{.Size}}' "$TAG" | numfmt --to=iec))"
