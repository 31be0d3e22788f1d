# Cairn: build the appliance image and boot or test it in QEMU. `make help` lists targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST_TARGET := x86_64-unknown-linux-gnu
# The appliance's own binaries are static: nothing in the image may come from the build
# host's libraries. --target keeps the flag away from build scripts and proc macros.
STATIC_RUSTFLAGS := -C target-feature=+crt-static
# Cargo puts its output under CARGO_TARGET_DIR when that is set (a second worktree, CI).
RELEASE_DIR := $(or $(CARGO_TARGET_DIR),target)/$(HOST_TARGET)/release
IMAGE_DIR := build/image
# The same commit gives the same image bytes.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
QEMU_MEM ?= 2048
BOARD ?= qemu-x86_64

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install the build host's packages when missing (apt)
	@scripts/setup-host.sh

.PHONY: binaries
binaries: deps ## Build init, hostd, cairnctl and the console, static
	RUSTFLAGS="$(STATIC_RUSTFLAGS)" cargo build --release --locked --target $(HOST_TARGET) \
		-p cairn-init -p hostd -p cairnctl -p cairn-console --bins

# Guests need cloud-hypervisor and rust-hypervisor-firmware, which are in no registry:
# image-builder reads their paths from CAIRN_CLOUD_HYPERVISOR and CAIRN_HYPERVISOR_FW in
# the environment (`CAIRN_CLOUD_HYPERVISOR=… make image`; make passes variables from the
# environment and the command line on by itself); without them the image builds and says
# so. Never `export` them here: an unset variable would reach image-builder as an empty
# value, which it refuses.

.PHONY: image
image: binaries ## Build build/image/{vmlinuz,initramfs.img,cairn.img}
	cargo run --release --locked -p image-builder -- build \
		--init $(RELEASE_DIR)/cairn-init --hostd $(RELEASE_DIR)/hostd \
		--console $(RELEASE_DIR)/cairn-console --cairnctl $(RELEASE_DIR)/cairnctl \
		--out $(IMAGE_DIR)

# Tools for tests only (never in the appliance image): binaries named here, from the
# packages of image-builder/packages-test.lock, with their libraries. dnsmasq: the peer VM's
# DHCP server; fio: make bench's SSD-cache table, in the appliance booted with the archive.
TEST_TOOLS := dnsmasq fio

.PHONY: test-tools
test-tools: deps ## Build build/image/test-tools.cpio: the tests' Debian tools (dnsmasq, fio)
	cargo run --release --locked -p image-builder -- test-tools \
		$(foreach tool,$(TEST_TOOLS),--tool $(tool)) --out $(IMAGE_DIR)/test-tools.cpio

.PHONY: reproducible
reproducible: image test-tools ## Build the image a second time from scratch and require identical bytes
	cargo run --release --locked -p image-builder -- build \
		--init $(RELEASE_DIR)/cairn-init --hostd $(RELEASE_DIR)/hostd \
		--console $(RELEASE_DIR)/cairn-console --cairnctl $(RELEASE_DIR)/cairnctl \
		--out build/image-again --work build/work-again
	cargo run --release --locked -p image-builder -- test-tools \
		$(foreach tool,$(TEST_TOOLS),--tool $(tool)) --out build/image-again/test-tools.cpio \
		--work build/work-again
	@for f in vmlinuz initramfs.img cairn.img test-tools.cpio; do \
		if cmp -s $(IMAGE_DIR)/$$f build/image-again/$$f; then echo "reproducible: $$f identical"; \
		else echo "reproducible: $$f differs between two builds of the same inputs" >&2; exit 1; fi; \
	done

.PHONY: lock
lock: deps ## Re-resolve image-builder/packages{,-test}.toml against Debian and rewrite the locks
	cargo run --release --locked -p image-builder -- lock
	cargo run --release --locked -p image-builder -- lock \
		--packages image-builder/packages-test.toml --lock image-builder/packages-test.lock

.PHONY: run
run: image ## Boot the qemu-x86_64 board with its serial console on this terminal (Ctrl-A X quits)
	@mkdir -p build/run
	@[ -f build/run/disk.qcow2 ] || qemu-img create -q -f qcow2 -F raw -b ../image/cairn.img build/run/disk.qcow2
	@echo "Booting Cairn (TCG; the first boot formats the config partition). Quit with Ctrl-A then X."
	qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m $(QEMU_MEM) \
		-nographic -no-user-config -nodefaults -serial mon:stdio \
		-kernel $(IMAGE_DIR)/vmlinuz -initrd $(IMAGE_DIR)/initramfs.img \
		-append "console=ttyS0,115200 cairn.board=$(BOARD) loglevel=4" \
		-drive file=build/run/disk.qcow2,format=qcow2,if=virtio \
		-netdev user,id=lan1 -device virtio-net-pci,netdev=lan1,addr=0x3,speed=10000,duplex=full \
		-netdev user,id=lan2,restrict=on -device virtio-net-pci,netdev=lan2,addr=0x4,speed=10000,duplex=full

.PHONY: run-uefi
run-uefi: image ## Boot the flashable disk image under UEFI (OVMF) through systemd-boot
	@mkdir -p build/run
	@cp -n /usr/share/OVMF/OVMF_VARS_4M.fd build/run/OVMF_VARS.fd
	@[ -f build/run/uefi.qcow2 ] || qemu-img create -q -f qcow2 -F raw -b ../image/cairn.img build/run/uefi.qcow2
	qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m $(QEMU_MEM) \
		-nographic -no-user-config -nodefaults -serial mon:stdio \
		-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
		-drive if=pflash,format=raw,file=build/run/OVMF_VARS.fd \
		-drive file=build/run/uefi.qcow2,format=qcow2,if=virtio -nic none

.PHONY: check
# cargo deny comes after clippy: --offline needs the crates clippy has already fetched. Only
# the offline checks: the advisory database is on a host this network does not reach.
check: deps ## fmt, clippy, cargo-deny, the unit tests (root-only tiers when root) and the set-up's own test
	scripts/tests/setup-host.test.sh
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo deny --offline check licenses bans sources
	cargo test --locked --workspace

.PHONY: test
test: check image test-tools reproducible ## Everything CI runs: check, reproducibility, the image booted in QEMU
	cargo nextest run --locked --profile vm -p qemu-tests --features vm-tests

.PHONY: bench
bench: image test-tools ## Boot timings, sizes, memory and the SSD-cache table: printed and written to build/bench.json
	cargo run --release --locked -p qemu-tests --bin bench -- --image-dir $(IMAGE_DIR) --out build/bench.json

# The oops count behind the choice of QEMU (README, "QEMU and the boot soak"): BOOTS boots,
# two at a time, each to READY or to a kernel oops/panic. CAIRN_QEMU=/path/to/qemu measures
# another emulator on the same image.
BOOTS ?= 100

.PHONY: boot-soak
boot-soak: image ## Boot the image BOOTS (100) times, count kernel oopses: build/boot-soak.json
	cargo run --release --locked -p qemu-tests --bin boot-soak -- --boots $(BOOTS) \
		--image-dir $(IMAGE_DIR) --out build/boot-soak.json

.PHONY: flash
flash: image ## Write build/image/cairn.img to DEV=/dev/sdX (asks first)
	@scripts/flash.sh "$(DEV)" $(IMAGE_DIR)/cairn.img

.PHONY: clean
clean: ## Remove build outputs (the package cache in ~/.cache/cairn stays)
	rm -rf build target
