#!/usr/bin/env bash
# Writes the Cairn disk image to a whole disk, after refusing anything that looks like a
# mistake: no device, a partition, a mounted disk, or the disk this host runs from.
set -euo pipefail
device="${1:-}"
image="${2:?usage: flash.sh DEVICE IMAGE}"

if [ -z "$device" ]; then
  echo "flash: name the target disk: make flash DEV=/dev/sdX" >&2; exit 2
fi
if [ ! -b "$device" ]; then
  echo "flash: $device is not a block device" >&2; exit 2
fi
if [ "$(lsblk -dno TYPE "$device")" != "disk" ]; then
  echo "flash: $device is a $(lsblk -dno TYPE "$device"), not a whole disk (use e.g. /dev/sdb, not /dev/sdb1)" >&2; exit 2
fi
if lsblk -nro MOUNTPOINT "$device" | grep -q .; then
  echo "flash: $device has mounted file systems:" >&2
  lsblk -o NAME,MOUNTPOINT "$device" >&2
  echo "flash: unmount them first; nothing was written" >&2; exit 2
fi
root_source=$(findmnt -no SOURCE / || true)
root_disk=$(lsblk -no PKNAME "$root_source" 2>/dev/null | head -n1 || true)
if [ -n "$root_disk" ] && [ "/dev/$root_disk" = "$device" ]; then
  echo "flash: $device holds this host's root file system; refusing" >&2; exit 2
fi
size=$(stat -c %s "$image")
disk_size=$(lsblk -dbno SIZE "$device")
if [ "$disk_size" -lt "$size" ]; then
  echo "flash: $device ($disk_size bytes) is smaller than the image ($size bytes)" >&2; exit 2
fi
lsblk -o NAME,SIZE,MODEL,SERIAL "$device"
read -r -p "Erase everything on $device and write Cairn? Type the device name to confirm: " answer
if [ "$answer" != "$device" ]; then
  echo "flash: not confirmed; nothing was written" >&2; exit 1
fi
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
# Not conv=sparse: skipped zero blocks would leave the old disk contents under the config
# partition, and init never formats a partition that holds anything.
$sudo dd if="$image" of="$device" bs=4M conv=fsync status=progress
sync
echo "flash: done. The first boot formats the config partition."
