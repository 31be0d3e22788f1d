#!/usr/bin/env bash
# Installs what building and testing Cairn needs on a Debian or Ubuntu host, then checks
# that every command the Makefile, image-builder and qemu-tests run resolves, and prints one
# line per tool with the version found. Called by `make deps` (and so by every make target).
#
# Why it checks commands and not package names: on a fresh Debian 12 machine of the kind
# CI uses, qemu-utils 10 (bookworm-backports) comes preinstalled; asking apt for
# qemu-system-x86 alone resolved bookworm's 7.2, which conflicts, and apt removed
# qemu-utils. dpkg then said "all installed" while qemu-img was gone. So: one apt
# transaction for the whole set (apt resolves versions together), a dry run first that
# refuses to remove anything we need, and a check of every command afterwards.
#
# Why QEMU from bookworm-backports on Debian 12: under Debian 12's QEMU 7.2 (multi-threaded
# TCG) the appliance's kernel oopses now and then on int3 while it live-patches its own
# text; `make boot-soak` measured it (README, "QEMU and the boot soak"). Backports is part
# of Debian's archive, signed with the same archive keys.
#
# The test (scripts/test-setup-host.sh) runs this with stand-in apt-get and dpkg-query on
# PATH; CAIRN_SETUP_ROOT and CAIRN_SETUP_OS_RELEASE let it point the file checks elsewhere.
set -euo pipefail

root="${CAIRN_SETUP_ROOT:-}"
os_release="${CAIRN_SETUP_OS_RELEASE:-/etc/os-release}"

# command|package: every command a make target or a test runs on the build host.
commands=(
  "qemu-system-x86_64|qemu-system-x86" # boots the appliance (TCG) for `make run` and qemu-tests
  "qemu-img|qemu-utils"                # qcow2 overlays for test disks, `make run`'s disk
  "mkfs.vfat|dosfstools"               # the EFI system partition (image-builder, guest disks)
  "fsck.fat|dosfstools"                # checks the ESP after it is written
  "mmd|mtools"                         # fills the ESP without mounting it (no root needed)
  "mcopy|mtools"
  "mke2fs|e2fsprogs"                   # ext4 fixtures in tests
  "debugfs|e2fsprogs"                  # reads a guest's ext4 disk in the guests test
  "sfdisk|fdisk"                       # cross-checks the GPT reader
  "cpio|cpio"                          # cross-checks the newc writer
  "unshare|util-linux"                 # hostd's root-only tests run in a fresh network/mount namespace
  "losetup|mount"                      # hostd's mount-namespace tests back their drives with loop devices
  "mkfs.btrfs|btrfs-progs"             # hostd's mount-namespace tests: the executor makes real volumes
  "btrfs|btrfs-progs"                  # …and the live storage tools scrub and measure them
  "dpkg-deb|dpkg"                      # unpacks the guest's Debian packages in qemu-tests
  "tar|tar"
  "xz|xz-utils"                        # decompresses guest kernel modules
  "cc|gcc"                             # C parts of -sys crates (zstd, xz)
  "clang|clang"                        # libbtrfsutil-sys generates its bindings with bindgen
  "make|make"
  "pkg-config|pkg-config"
  "curl|curl"                          # rustup, when cargo is missing
)

# file|package: files the build and the tests open by path (shell globs allowed).
files=(
  "/usr/share/OVMF/OVMF_CODE_4M.fd|ovmf" # UEFI firmware: boots the disk image through systemd-boot
  "/usr/share/OVMF/OVMF_VARS_4M.fd|ovmf"
  "/usr/include/btrfsutil.h|libbtrfsutil-dev" # hostd links libbtrfsutil.a statically
  "/usr/lib/llvm-*/lib/libclang.so|libclang-dev" # bindgen loads libclang (a glob: LLVM's version varies)
  "/etc/ssl/certs/ca-certificates.crt|ca-certificates"
)

# Packages without a command or file above that the build still needs.
extra_packages=(
  libc6-dev # static glibc: init, hostd and the console are linked statically
)

say() { echo "setup: $*"; }
fail() {
  echo "setup: $*" >&2
  exit 1
}

os_field() { # KEY → value from os-release, empty when absent
  [ -r "$os_release" ] || return 0
  sed -n "s/^$1=//p" "$os_release" | tr -d '"' | head -n 1
}

distro="$(os_field ID)"
codename="$(os_field VERSION_CODENAME)"
# Debian 12's own QEMU is the one that oopses (above): take QEMU from bookworm-backports.
qemu_release=""
if [ "$distro" = "debian" ] && [ "$codename" = "bookworm" ]; then
  qemu_release="bookworm-backports"
fi

missing_things() { # prints "thing|package" for each command or file that is not there
  local entry
  for entry in "${commands[@]}"; do
    command -v "${entry%%|*}" >/dev/null 2>&1 || echo "$entry"
  done
  for entry in "${files[@]}"; do
    compgen -G "$root${entry%%|*}" >/dev/null || echo "$entry"
  done
}

qemu_major() { # the major version of qemu-system-x86_64, 0 when missing or unreadable
  local version
  version="$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p' | head -n 1)"
  echo "${version:-0}"
}

needs_backports_qemu() {
  [ -n "$qemu_release" ] && [ "$(qemu_major)" -lt 10 ]
}

all_packages() { # every package of the set, each once, in a stable order
  local entry
  {
    for entry in "${commands[@]}" "${files[@]}"; do echo "${entry##*|}"; done
    printf '%s\n' "${extra_packages[@]}"
  } | awk '!seen[$0]++'
}

# QEMU and the packages whose versions must match it, taken from backports on Debian 12.
# Named one by one rather than with `-t bookworm-backports`, which would move the whole set
# there (libbtrfsutil-dev 6.14 among them, which the pinned libbtrfsutil crate does not build
# against).
qemu_packages=(qemu-system-x86 qemu-system-common qemu-system-data qemu-utils seabios)

# The apt arguments for the whole set, in one transaction.
install_arguments() {
  local package
  while read -r package; do
    if [ -n "$qemu_release" ] && printf '%s\n' "${qemu_packages[@]}" | grep -qxF "$package"; then
      echo "$package/$qemu_release"
    else
      echo "$package"
    fi
  done < <(
    all_packages
    if [ -n "$qemu_release" ]; then printf '%s\n' "${qemu_packages[@]}"; fi
  ) | awk '!seen[$0]++'
}

as_root() {
  if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi
}

add_backports_source() {
  local sources_dir="${CAIRN_SETUP_APT_SOURCES:-/etc/apt/sources.list.d}"
  local file="$sources_dir/cairn-bookworm-backports.sources"
  [ -e "$file" ] && return 0
  # The same mirror the machine already uses, so a local or corporate mirror keeps working.
  local mirror
  mirror="$(grep -hoE '^(URIs: *|deb +)https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    sed -E 's/^(URIs: *|deb +)//; s/ *$//' | head -n 1 || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  say "adding Debian's bookworm-backports suite ($mirror, signed by the Debian archive keys) for QEMU"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" | as_root tee "$file" >/dev/null
}

# A dry run first: apt must not remove a package the set needs (the qemu-utils case above).
check_nothing_needed_is_removed() {
  local -a arguments=("$@")
  local simulation removed needed=() package
  simulation="$(DEBIAN_FRONTEND=noninteractive apt-get install -s -q --no-install-recommends "${arguments[@]}" 2>&1)" ||
    fail "apt cannot install the set (${arguments[*]}):"$'\n'"$simulation"
  removed="$(sed -n 's/^Remv \([^ ]*\).*/\1/p' <<<"$simulation")"
  [ -z "$removed" ] && return 0
  while read -r package; do
    if grep -qxF "$package" <<<"$removed"; then needed+=("$package"); fi
  done < <(all_packages)
  if [ ${#needed[@]} -gt 0 ]; then
    fail "apt would remove ${needed[*]}, which the build or the tests need; nothing was installed." \
      "Install a matching version by hand (apt-get install ${needed[*]} with the same release as the rest), then run make again."
  fi
}

install_set() {
  local -a arguments
  mapfile -t arguments < <(install_arguments)
  if needs_backports_qemu; then add_backports_source; fi
  say "installing in one apt transaction: ${arguments[*]}"
  as_root apt-get update -q
  check_nothing_needed_is_removed "${arguments[@]}"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${arguments[@]}"
}

missing="$(missing_things)"
if [ -n "$missing" ] || needs_backports_qemu; then
  install_set
  missing="$(missing_things)"
  if [ -n "$missing" ]; then
    # apt said it succeeded and yet a command is gone: ask once more for what is missing
    # together with the rest, then give up naming each command and its package.
    say "still missing after the install: $(cut -d'|' -f1 <<<"$missing" | tr '\n' ' ')— trying once more"
    install_set
    missing="$(missing_things)"
  fi
  if [ -n "$missing" ]; then
    while IFS='|' read -r thing package; do
      echo "setup: $thing is missing: install Debian's $package package" >&2
    done <<<"$missing"
    fail "the build host is not ready (above); nothing else was run"
  fi
  if needs_backports_qemu; then
    fail "qemu-system-x86_64 is $(qemu_major).x; Cairn's tests need QEMU 10 from $qemu_release (apt-get install -t $qemu_release qemu-system-x86 qemu-utils)"
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    fail "cargo is in ~/.cargo/bin; add it to PATH (source ~/.cargo/env)"
  fi
  say "installing Rust with rustup (the toolchain version comes from rust-toolchain.toml)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fail "run 'source ~/.cargo/env' (or open a new shell), then the make command again"
fi

# Cargo tools from crates.io (no Debian package): make check's cargo-deny and make test's
# nextest profile. Pinned, and checked after the install like every other command.
cargo_tools=(
  "cargo-deny|0.20.2"     # deny.toml: licences, duplicate versions, sources
  "cargo-nextest|0.9.143" # .config/nextest.toml: the VM tests' profile (slow, flaky reported)
)
for entry in "${cargo_tools[@]}"; do
  tool="${entry%%|*}"
  version="${entry##*|}"
  if ! command -v "$tool" >/dev/null 2>&1; then
    say "installing $tool $version (cargo install --locked; a few minutes, once)"
    cargo install --locked "$tool@$version"
    command -v "$tool" >/dev/null 2>&1 ||
      fail "$tool is missing after cargo install; is ~/.cargo/bin on PATH?"
  fi
done

# One line per tool with its version, so a log shows what the run used.
version_of() {
  local output
  output="$("$@" 2>&1 | grep -m 1 -E '[0-9]+\.[0-9]+' || true)"
  echo "${output:-(no version printed)}"
}
report() { printf 'setup: %-19s %s\n' "$1" "$2"; }
report qemu-system-x86_64 "$(version_of qemu-system-x86_64 --version)"
report qemu-img "$(version_of qemu-img --version)"
report mkfs.vfat "$(version_of mkfs.vfat --help)"
report mtools "$(version_of mcopy --version)"
report mke2fs "$(version_of mke2fs -V)"
report sfdisk "$(version_of sfdisk --version)"
report btrfs "$(version_of btrfs --version)"
report cpio "$(version_of cpio --version)"
report clang "$(version_of clang --version)"
report cc "$(version_of cc --version)"
report cargo "$(version_of cargo --version)"
report cargo-deny "$(version_of cargo deny --version)"
report cargo-nextest "$(version_of cargo nextest --version)"
report ovmf "$(dpkg-query -W -f='${Version}' ovmf 2>/dev/null || echo '(not from a package)')"
