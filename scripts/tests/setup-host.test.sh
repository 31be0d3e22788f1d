#!/usr/bin/env bash
# Tests scripts/setup-host.sh with stand-in apt-get, dpkg-query and tools on PATH: a fake
# Debian 12 machine whose "apt" installs stub commands, and can act out the failure CI did
# not see (an install that removes qemu-utils, and so qemu-img). Run by `make check`; ends
# with the "N passed, N failed" line.
set -uo pipefail

script="$(cd "$(dirname "$0")/.." && pwd)/setup-host.sh"
passed=0
failed=0

# Which stub commands and files each package brings (only what setup-host.sh checks).
package_contents() {
  case "$1" in
    qemu-system-x86) echo "bin:qemu-system-x86_64" ;;
    qemu-utils) echo "bin:qemu-img" ;;
    dosfstools) echo "bin:mkfs.vfat bin:fsck.fat" ;;
    mtools) echo "bin:mmd bin:mcopy" ;;
    e2fsprogs) echo "bin:mke2fs bin:debugfs" ;;
    fdisk) echo "bin:sfdisk" ;;
    cpio) echo "bin:cpio" ;;
    util-linux) echo "bin:unshare" ;;
    mount) echo "bin:losetup" ;;
    btrfs-progs) echo "bin:mkfs.btrfs bin:btrfs" ;;
    dpkg) echo "bin:dpkg-deb" ;;
    tar) echo "bin:tar" ;;
    xz-utils) echo "bin:xz" ;;
    gcc) echo "bin:cc" ;;
    clang) echo "bin:clang" ;;
    make) echo "bin:make" ;;
    pkg-config) echo "bin:pkg-config" ;;
    curl) echo "bin:curl" ;;
    ovmf) echo "file:/usr/share/OVMF/OVMF_CODE_4M.fd file:/usr/share/OVMF/OVMF_VARS_4M.fd" ;;
    libbtrfsutil-dev) echo "file:/usr/include/btrfsutil.h" ;;
    libclang-dev) echo "file:/usr/lib/llvm-14/lib/libclang.so" ;;
    ca-certificates) echo "file:/etc/ssl/certs/ca-certificates.crt" ;;
    *) echo "" ;;
  esac
}
export -f package_contents

# A fresh fake machine in $1: Debian 12, cargo present, nothing else of the set.
make_machine() {
  local machine="$1"
  mkdir -p "$machine/bin" "$machine/sys" "$machine/root" "$machine/sources"
  printf 'ID=debian\nVERSION_CODENAME=bookworm\n' >"$machine/os-release"
  : >"$machine/apt.log"
  # The few host utilities the script itself runs; nothing else of the host is on PATH.
  local tool
  for tool in bash sed grep awk head tr cut tee cat id env mkdir rm chmod printf dirname; do
    ln -s "$(command -v "$tool")" "$machine/sys/$tool"
  done
  cat >"$machine/bin/cargo" <<'STUB'
#!/usr/bin/env bash
# Stand-in cargo: `cargo install --locked TOOL@VERSION` puts a stub TOOL on PATH.
if [ "$1" = "install" ]; then
  echo "cargo $*" >>"$MACHINE/apt.log"
  tool="${!#}"
  printf '#!/bin/sh\necho "%s (stub)"\n' "${tool//@/ }" >"$MACHINE/bin/${tool%@*}"
  chmod +x "$MACHINE/bin/${tool%@*}"
  exit 0
fi
echo "cargo 1.95.0 (stub)"
STUB
  cat >"$machine/bin/dpkg-query" <<'STUB'
#!/usr/bin/env bash
# dpkg-query -W -f='${Version}' PACKAGE
package="${!#}"
grep -qx "$package" "$MACHINE/installed" 2>/dev/null || exit 1
echo "1.0-stub"
STUB
  cat >"$machine/bin/apt-get" <<'STUB'
#!/usr/bin/env bash
# Stand-in apt-get: logs every call, "installs" packages as stub commands and files, and
# acts out $MACHINE/scenario.
echo "apt-get $*" >>"$MACHINE/apt.log"
scenario="$(cat "$MACHINE/scenario" 2>/dev/null)"
[ "$1" = "update" ] && exit 0
simulate=false
packages=()
for arg in "$@"; do
  case "$arg" in
    install | -y | -q | --no-install-recommends) ;;
    -s) simulate=true ;;
    -*) ;;
    *) packages+=("$arg") ;;
  esac
done
if $simulate; then
  [ "$scenario" = "dry-run-removes" ] && echo "Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]"
  exit 0
fi
for spec in "${packages[@]}"; do
  package="${spec%%/*}"
  release=""
  [ "$spec" != "$package" ] && release="${spec#*/}"
  for item in $(package_contents "$package"); do
    case "$item" in
      bin:*)
        name="${item#bin:}"
        version="1.0"
        if [ "$package" = "qemu-system-x86" ]; then
          version="7.2.22"
          [ "$release" = "bookworm-backports" ] && version="10.0.2"
          printf '#!/bin/sh\necho "QEMU emulator version %s (stub)"\n' "$version" >"$MACHINE/bin/$name"
        else
          printf '#!/bin/sh\necho "%s %s (stub)"\n' "$name" "$version" >"$MACHINE/bin/$name"
        fi
        chmod +x "$MACHINE/bin/$name"
        ;;
      file:*)
        mkdir -p "$MACHINE/root$(dirname "${item#file:}")"
        : >"$MACHINE/root${item#file:}"
        ;;
    esac
  done
  echo "$package" >>"$MACHINE/installed"
done
installs="$(grep -c -- '-y' "$MACHINE/apt.log")"
# The failure CI did not see: the install "succeeds" and qemu-img is gone.
if [ "$scenario" = "install-removes-always" ] || { [ "$scenario" = "install-removes-once" ] && [ "$installs" -eq 1 ]; }; then
  echo "The following packages will be REMOVED: qemu-utils"
  rm -f "$MACHINE/bin/qemu-img"
fi
exit 0
STUB
  chmod +x "$machine/bin/"*
}

run_setup() { # machine → runs setup-host.sh there; stdout+stderr in $machine/out, rc echoed
  local machine="$1"
  MACHINE="$machine" PATH="$machine/bin:$machine/sys" CAIRN_SETUP_ROOT="$machine/root" \
    CAIRN_SETUP_OS_RELEASE="$machine/os-release" CAIRN_SETUP_APT_SOURCES="$machine/sources" \
    HOME="$machine" bash "$script" >"$machine/out" 2>&1
  echo $?
}

check() { # name condition-description command...
  local name="$1"
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAILED: $name" >&2
    echo "--- setup output ---" >&2
    cat "$machine/out" >&2
    echo "--- apt calls ---" >&2
    cat "$machine/apt.log" >&2
  fi
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export MACHINE

# 1. A fresh Debian 12 machine: one transaction with QEMU from backports, every tool there.
machine="$work/fresh"
make_machine "$machine"
rc="$(run_setup "$machine")"
check "fresh: exit 0" test "$rc" -eq 0
check "fresh: one install transaction" test "$(grep -c -- ' -y ' "$machine/apt.log")" -eq 1
check "fresh: QEMU named from bookworm-backports" \
  grep -q "qemu-system-x86/bookworm-backports.*qemu-utils/bookworm-backports" "$machine/apt.log"
check "fresh: the whole set in that transaction" \
  grep -q -- "-y .*ovmf.*libbtrfsutil-dev.*libclang-dev" "$machine/apt.log"
check "fresh: a dry run before the install" grep -q -- "install -s" "$machine/apt.log"
check "fresh: backports source written, signed by the archive keys" \
  grep -q "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "$machine/sources/cairn-bookworm-backports.sources"
check "fresh: qemu-img there" test -x "$machine/bin/qemu-img"
check "fresh: btrfs-progs in the set, for the mount-namespace tests" \
  grep -q -- "-y .*btrfs-progs" "$machine/apt.log"
check "fresh: mkfs.btrfs and btrfs there" test -x "$machine/bin/mkfs.btrfs" -a -x "$machine/bin/btrfs"
check "fresh: a version line per tool" grep -q "setup: qemu-system-x86_64  QEMU emulator version 10.0.2" "$machine/out"
check "fresh: cargo-deny installed, pinned" grep -q "cargo install --locked cargo-deny@" "$machine/apt.log"
check "fresh: cargo-nextest installed, pinned" grep -q "cargo install --locked cargo-nextest@" "$machine/apt.log"

# 2. The install removes qemu-img once: set-up notices and installs it again.
machine="$work/removes-once"
make_machine "$machine"
echo install-removes-once >"$machine/scenario"
rc="$(run_setup "$machine")"
check "removes once: exit 0" test "$rc" -eq 0
check "removes once: noticed" grep -q "still missing after the install: qemu-img" "$machine/out"
check "removes once: a second transaction" test "$(grep -c -- ' -y ' "$machine/apt.log")" -eq 2
check "removes once: qemu-img back" test -x "$machine/bin/qemu-img"
check "removes once: reported with its version" grep -q "setup: qemu-img  *qemu-img 1.0" "$machine/out"

# 3. The install removes qemu-img every time: set-up stops naming the command and package,
#    and never reports success.
machine="$work/removes-always"
make_machine "$machine"
echo install-removes-always >"$machine/scenario"
rc="$(run_setup "$machine")"
check "removes always: exit non-zero" test "$rc" -ne 0
check "removes always: names command and package" \
  grep -q "setup: qemu-img is missing: install Debian's qemu-utils package" "$machine/out"
check "removes always: no version report" bash -c "! grep -q 'setup: cargo ' '$machine/out'"

# 4. apt's dry run wants to remove a package of the set: refused before anything is installed.
machine="$work/dry-run-removes"
make_machine "$machine"
echo dry-run-removes >"$machine/scenario"
rc="$(run_setup "$machine")"
check "dry run removes: exit non-zero" test "$rc" -ne 0
check "dry run removes: says what apt would remove" grep -q "apt would remove qemu-utils" "$machine/out"
check "dry run removes: nothing installed" test "$(grep -c -- ' -y ' "$machine/apt.log")" -eq 0

# 5. Everything already there (QEMU 10): no apt call at all.
machine="$work/ready"
make_machine "$machine"
run_setup "$machine" >/dev/null
: >"$machine/apt.log"
rc="$(run_setup "$machine")"
check "ready: exit 0" test "$rc" -eq 0
check "ready: apt not called" test ! -s "$machine/apt.log"

# 6. Debian 12 with its own QEMU 7.2 installed: moved to QEMU 10 from backports.
machine="$work/old-qemu"
make_machine "$machine"
run_setup "$machine" >/dev/null
printf '#!/bin/sh\necho "QEMU emulator version 7.2.22 (stub)"\n' >"$machine/bin/qemu-system-x86_64"
: >"$machine/apt.log"
rc="$(run_setup "$machine")"
check "old qemu: exit 0" test "$rc" -eq 0
check "old qemu: installed from backports" grep -q "qemu-system-x86/bookworm-backports" "$machine/apt.log"
check "old qemu: now 10" grep -q "QEMU emulator version 10.0.2" "$machine/out"

# 7. Debian 13 (trixie): QEMU from its own suite, no backports.
machine="$work/trixie"
make_machine "$machine"
printf 'ID=debian\nVERSION_CODENAME=trixie\n' >"$machine/os-release"
rc="$(run_setup "$machine")"
check "trixie: exit 0" test "$rc" -eq 0
check "trixie: plain package names" grep -q -- "-y .*qemu-system-x86 qemu-utils " "$machine/apt.log"
check "trixie: no backports source" test ! -e "$machine/sources/cairn-bookworm-backports.sources"

echo "setup-host: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
