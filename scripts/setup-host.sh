#!/usr/bin/env bash
# Installs what building and testing Cairn needs on a Debian or Ubuntu host, and nothing
# that is already there. Called by `make deps` (and so by `make run` and `make test`).
set -euo pipefail

packages=(
  qemu-system-x86 # boots the appliance (TCG) for `make run` and the qemu-tests
  qemu-utils      # qemu-img: qcow2 overlays for test disks
  ovmf            # UEFI firmware: boots the flashable disk image through systemd-boot
  dosfstools      # mkfs.vfat and fsck.fat: the EFI system partition
  mtools          # mmd/mcopy: fills the ESP without mounting it (no root needed)
  e2fsprogs       # mke2fs: tests make ext4 fixtures
  libc6-dev       # static glibc: init, hostd and the console are linked statically
  gcc             # C parts of -sys crates (zstd, xz)
  make
  pkg-config
  libbtrfsutil-dev # libbtrfsutil.a: hostd links it statically for subvolumes and snapshots
  clang           # libbtrfsutil-sys generates its bindings with bindgen at build time…
  libclang-dev    # …which loads libclang
  ca-certificates
  curl
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup: cargo is in ~/.cargo/bin; add it to PATH (source ~/.cargo/env)" >&2
  else
    echo "setup: installing Rust with rustup (the toolchain version comes from rust-toolchain.toml)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
  echo "setup: run 'source ~/.cargo/env' (or open a new shell), then the make command again" >&2
  exit 1
fi
