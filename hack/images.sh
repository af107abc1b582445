#!/usr/bin/env bash
# Container images built here, with podman from Debian's packages and no registry: a Debian bookworm
# base made by debootstrap from the host's Debian mirror, a Python image on it standing in for the public
# slim Python image, the product images from the repo's Dockerfiles, and PostgreSQL and Redis images
# for the test cluster (the chart's defaults stay the official images).
#   hack/images.sh build [NAME...]        build the images (default: all; a NAME's base images first);
#                                         unchanged inputs are podman layer-cache hits (seconds)
#   hack/images.sh import ADDRESS [IMAGE...]
#                                         import images into the containerd at socket ADDRESS, namespace
#                                         k8s.io, under their podman names (default: service, operator,
#                                         postgres, redis); an IMAGE is a NAME below or any podman image;
#                                         skipped when containerd already holds that exact image
#   hack/images.sh list                   the image names, one per line (localhost/semantik-...)
#   hack/images.sh names                  the short NAMEs: base python postgres redis service operator
#   hack/images.sh env                    print the exports that point podman at this storage:
#                                         eval "$(hack/images.sh env)"; podman run --rm ...
# podman's storage lives under ~/.cache/semantik/containers, the base rootfs tarball under
# ~/.cache/semantik/images; builds mount the host's uv cache (~/.cache/semantik/uv) so `uv sync`
# downloads nothing it already has. Builds and runs use the host network (no CNI bridge, no NAT rules).
# `import` streams through `podman save`, which stages the archive in /var/tmp first: the service
# image needs ~7 GB free there, and containerd twice that (content and unpacked snapshot).
# Logs go to stderr; only list, names and env write to stdout.
set -euo pipefail
hack="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$hack")"
# shellcheck source=hack/lib.sh
source "$hack/lib.sh"

cache="${SEMANTIK_CACHE_DIR:-$HOME/.cache/semantik}"
containers="$cache/containers"
# Run state (locks, the libpod database's runtime half): cleared with /run at a reboot where /run is tmpfs.
run_dir="/run/semantik-containers"
rootfs_dir="$cache/images"
uv_cache="$cache/uv"
suite=bookworm
# Bump when the base recipe (make_rootfs) changes: the tarball's name, and the base image's label, carry it.
base_recipe=1

declare -A images=(
  [base]="localhost/semantik-base:bookworm"
  [python]="localhost/semantik-python:3.11-bookworm"
  [postgres]="localhost/semantik-postgres:15-bookworm"
  [redis]="localhost/semantik-redis:7-bookworm"
  [service]="localhost/semantik-service:dev"
  [operator]="localhost/semantik-operator:dev"
)
order=(base python postgres redis service operator)
declare -A parent=([python]=base [postgres]=base [redis]=base [service]=python [operator]=python)
cluster_images=(service operator postgres redis)

write_config() {
  mkdir -p "$containers" "$run_dir"
  cat >"$containers/storage.conf.new" <<CONF
# Written by hack/images.sh: semantik's own podman storage, apart from the host's.
[storage]
driver = "overlay"
graphroot = "$containers/storage"
runroot = "$run_dir/storage"
CONF
  # Root here lacks CAP_SYS_RESOURCE: podman's default rlimits (1048576) fail, these are the hard limits.
  # No systemd: cgroupfs, and events to a file rather than the journal.
  cat >"$containers/containers.conf.new" <<CONF
# Written by hack/images.sh.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
# runc, not crun: crun refuses a host whose cgroup v2 hierarchy is mounted beside v1 with a controller in
# it ("cgroups in hybrid mode not supported"), as on machines where /sys/fs/cgroup/unified holds hugetlb.
runtime = "runc"
events_logger = "file"
events_logfile_path = "$containers/events.log"
tmp_dir = "$run_dir/libpod"
CONF
  local file
  for file in storage.conf containers.conf; do
    if cmp -s "$containers/$file.new" "$containers/$file"; then rm "$containers/$file.new"; else mv "$containers/$file.new" "$containers/$file"; fi
  done
  export CONTAINERS_STORAGE_CONF="$containers/storage.conf" CONTAINERS_CONF="$containers/containers.conf"
}

image_exists() { podman image exists "$1"; }

# The host's Debian mirror (deb822 or one-line sources), so the base sees the packages the host sees.
debian_mirror() {
  local mirror=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    mirror="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [[ -z $mirror && -r /etc/apt/sources.list ]]; then
    mirror="$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)"
  fi
  echo "${mirror:-http://deb.debian.org/debian}"
}

rootfs_tarball() { echo "$rootfs_dir/debian-$suite-minbase-r$base_recipe.tar"; }

# debootstrap's minbase, made like Debian's own container images: no services started by apt, no
# recommends, no apt lists or caches kept, the mirror and its updates and security suites as sources.
make_rootfs() {
  local tarball="$1" mirror dir started=$EPOCHREALTIME
  mirror="$(debian_mirror)"
  mkdir -p "$rootfs_dir"
  dir="$(mktemp -d "$rootfs_dir/rootfs.XXXXXX")"
  log "debootstrap --variant=minbase $suite from $mirror"
  debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$dir.log" 2>&1 || {
    tail -20 "$dir.log" >&2
    die "debootstrap failed (log: $dir.log)"
  }
  printf '#!/bin/sh\n# Containers start no services while apt runs.\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$dir/etc/apt/apt.conf.d/90semantik-slim"
  printf 'Acquire::Languages "none";\n' >"$dir/etc/apt/apt.conf.d/90semantik-languages"
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s-security %s-security main\n' \
    "$mirror" "$suite" "$mirror" "$suite" "${mirror%/debian}/debian" "$suite" >"$dir/etc/apt/sources.list"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log "$dir/debootstrap"
  tar --numeric-owner -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$dir" "$dir.log"
  log "base rootfs $(du -h "$tarball" | cut -f1) took $(since "$started")"
}

build_base() {
  local image="${images[base]}" tarball
  tarball="$(rootfs_tarball)"
  if image_exists "$image" &&
    [[ $(podman image inspect --format '{{index .Labels "io.semantik.rootfs"}}' "$image") == "$(basename "$tarball")" ]]; then
    return 0
  fi
  [[ -s $tarball ]] || make_rootfs "$tarball"
  podman import --quiet --change "LABEL io.semantik.rootfs=$(basename "$tarball")" --change 'CMD ["bash"]' \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8" \
    "$tarball" "$image" >/dev/null
}

# This host may reach PyPI only through a TLS-inspecting proxy whose CA is in the host's bundle: the
# build steps that download (pip, uv) see the host's bundle through read-only mounts, and nothing of it
# stays in an image.
host_trust_volumes() {
  local bundle=/etc/ssl/certs/ca-certificates.crt config="$containers/build-config"
  [[ -r $bundle ]] || return 0
  mkdir -p "$config"
  printf '[global]\ncert = %s\nroot-user-action = ignore\n' "$bundle" >"$config/pip.conf"
  printf 'system-certs = true\n' >"$config/uv.toml"
  printf '%s\n' --volume "$bundle:$bundle:ro" --volume "$config/pip.conf:/etc/pip.conf:ro" \
    --volume "$config/uv.toml:/etc/uv/uv.toml:ro"
}

# What a Containerfile build reads, hashed: the parent image, the Containerfile, the build arguments
# and the context files it copies. podman's layer cache would find the same, but only after hashing
# the service image's 6 GB environment for its COPY --from (~40 s); this key answers in a fraction
# of a second. It is kept beside the storage (containers/inputs/NAME: key and image id), not as a
# label: a label would give the image a new id whenever only a comment changed, and every image
# built on it would lose its layer cache.
inputs_key() {
  local parent_image="$1" containerfile="$2" context="$3" paths=("${@:4}")
  {
    podman image inspect --format '{{.Id}}' "$parent_image"
    sha256sum <"$containerfile" # the content only: the same build in another clone is the same key
    (cd "$context" && find "${paths[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
      sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

build_containerfile() {
  local name="$1" image="${images[$1]}" containerfile context args=() paths=() trust key
  case $name in
    python | postgres | redis)
      containerfile="$hack/images/$name.Containerfile" context="$hack/images" paths=(.)
      ;;
    service | operator)
      containerfile="$root/Dockerfile.$name" context="$root"
      paths=(.dockerignore pyproject.toml uv.lock README.md hack/image-packages.sh services operator)
      mkdir -p "$uv_cache"
      mapfile -t trust < <(host_trust_volumes)
      args=("${trust[@]}" --build-arg "PYTHON_IMAGE=${images[python]}" --volume "$uv_cache:/root/.cache/uv")
      # torch as locked, from PyPI (its CPU index is out of reach here): the CUDA build runs on CPU too.
      [[ $name == service ]] && args+=(--build-arg TORCH_VARIANT=cuda)
      ;;
  esac
  key="$(inputs_key "${images[${parent[$name]}]}" "$containerfile" "$context" "${paths[@]}")"
  local record="$containers/inputs/$name" id deps_key="" deps_record="$containers/inputs/$name.deps"
  id="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null)" || id=""
  [[ -n $id && -r $record && $(<"$record") == "$key $id" ]] && return 0
  if [[ $name == service || $name == operator ]]; then
    # What the dependency layer is built from (Dockerfile.service: everything copied before `uv sync`).
    deps_key="$(inputs_key "${images[${parent[$name]}]}" "$containerfile" "$context" \
      pyproject.toml uv.lock README.md hack/image-packages.sh)"
    if [[ ! -r $deps_record || $(<"$deps_record") != "$deps_key" ]]; then
      # That layer will be rebuilt, so the old one is gigabytes nothing reuses; kept while the new one
      # is copied and committed, it doubled the disk the service image needs (ENOSPC on a shared disk).
      podman rmi --force "$image" "${image%%:*}-build:${image##*:}" >/dev/null 2>&1 || true
      podman image prune --force >/dev/null
    fi
  fi
  podman build --quiet --pull=never --layers --network=host --format=docker \
    --tag "$image" --file "$containerfile" "${args[@]}" "$context" >/dev/null
  # The build stage, tagged (a cache hit now) so that pruning keeps its layers: the dependencies'
  # layer is what makes the next code change quick to rebuild.
  case $name in
    service | operator)
      podman build --quiet --pull=never --layers --network=host --format=docker --target=build \
        --tag "${image%%:*}-build:${image##*:}" --file "$containerfile" "${args[@]}" "$context" >/dev/null
      ;;
  esac
  built_any=1
  mkdir -p "$containers/inputs"
  echo "$key $(podman image inspect --format '{{.Id}}' "$image")" >"$record"
  [[ -z $deps_key ]] || echo "$deps_key" >"$deps_record"
}

build() {
  local wanted=("$@") name closure=() started
  built_any=""
  [[ ${#wanted[@]} -gt 0 ]] || wanted=("${order[@]}")
  declare -A need=()
  for name in "${wanted[@]}"; do
    [[ -n ${images[$name]:-} ]] || die "unknown image $name (names: ${order[*]})"
    while [[ -n $name ]]; do
      need[$name]=1
      name="${parent[$name]:-}"
    done
  done
  for name in "${order[@]}"; do [[ -n ${need[$name]:-} ]] && closure+=("$name"); done
  # containerd too: `import` loads into it, and its tests run before the node tier installs the rest.
  ensure_debian_packages podman buildah debootstrap runc containerd
  write_config
  exec 9>"$containers/build.lock"
  flock 9
  for name in "${closure[@]}"; do
    started=$EPOCHREALTIME
    if [[ $name == base ]]; then build_base; else build_containerfile "$name"; fi
    log "${images[$name]} ($(podman image inspect --format '{{.Size}}' "${images[$name]}" | numfmt --to=iec)) took $(since "$started")"
  done
  # Each rebuild of the service image leaves gigabytes of untagged layers behind.
  if [[ -n $built_any ]]; then
    started=$EPOCHREALTIME
    podman image prune --force >/dev/null
    log "pruned untagged images in $(since "$started")"
  fi
}

# The name containerd records for an image that a docker archive tags NAME: Docker's normalisation.
containerd_name() {
  local name="$1"
  [[ ${name%%/*} == *[.:]* || ${name%%/*} == localhost ]] || name="docker.io/$name"
  [[ $name == docker.io/*/* ]] || name="${name/docker.io\//docker.io/library/}"
  [[ ${name##*/} == *:* || $name == *@* ]] || name="$name:latest"
  echo "$name"
}

# The digest of the image containerd has under NAME (empty when none).
containerd_digest() {
  ctr --address "$address" --namespace k8s.io images ls "name==$1" | awk 'NR == 2 { print $3 }'
}

import_images() {
  local address="${1:?usage: $0 import ADDRESS [IMAGE...]}" refs=("${@:2}") ref image id name started before
  local replaced=()
  [[ -S $address ]] || die "no containerd socket at $address"
  [[ ${#refs[@]} -gt 0 ]] || refs=("${cluster_images[@]}")
  ensure_debian_packages podman containerd
  write_config
  local ctr=(ctr --address "$address" --namespace k8s.io)
  for ref in "${refs[@]}"; do
    started=$EPOCHREALTIME
    image="${images[$ref]:-$ref}"
    id="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null)" ||
      die "no podman image $image here: hack/images.sh build ${images[$ref]:+$ref}"
    name="$(containerd_name "$image")"
    if [[ -n $("${ctr[@]}" images ls --quiet "name==$name,labels.\"io.semantik.podman-id\"==$id") ]]; then
      log "$name is already in containerd ($(since "$started"))"
      continue
    fi
    before="$(containerd_digest "$name")"
    podman save --format docker-archive "$image" | "${ctr[@]}" images import - >/dev/null
    "${ctr[@]}" images label "$name" "io.semantik.podman-id=$id" >/dev/null
    log "imported $name into containerd in $(since "$started")"
    [[ -z $before || $before == "$(containerd_digest "$name")" ]] || replaced+=("$before")
  done
  if [[ ${#replaced[@]} -gt 0 ]]; then forget_replaced "${replaced[@]}"; fi
}

# An import re-points the name, but the image it named before (6 GB for the service image) stays: the
# CRI plugin also refers to each image it has seen by its id (`sha256:<config digest>`), and that
# reference keeps the old content and snapshots alive. Remove the id references to the replaced images
# (by their manifest digests); --sync makes containerd collect what nothing refers to and wait for it.
forget_replaced() {
  local started=$EPOCHREALTIME stale
  mapfile -t stale < <(ctr --address "$address" --namespace k8s.io images ls |
    awk -v replaced=" $* " 'NR > 1 && $1 ~ /^sha256:/ && index(replaced, " " $3 " ") { print $1 }')
  [[ ${#stale[@]} -gt 0 ]] || return 0
  ctr --address "$address" --namespace k8s.io images rm --sync "${stale[@]}" >/dev/null
  log "containerd: the replaced image(s) ${stale[*]} removed in $(since "$started")"
}

command="${1:-}"
[[ $# -gt 0 ]] && shift
case "$command" in
  build) build "$@" ;;
  import) import_images "$@" ;;
  list) for name in "${order[@]}"; do echo "${images[$name]}"; done ;;
  names) printf '%s\n' "${order[@]}" ;;
  env)
    write_config
    printf 'export CONTAINERS_STORAGE_CONF=%q\nexport CONTAINERS_CONF=%q\n' "$CONTAINERS_STORAGE_CONF" "$CONTAINERS_CONF"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
