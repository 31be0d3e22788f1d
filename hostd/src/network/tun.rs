//! Persistent tap devices, through `/dev/net/tun`'s ioctls: netlink can enslave and delete
//! most links but cannot create a tap, and cannot delete one either (the tun driver has no
//! `dellink`), so both ends go through the character device.
//!
//! hostd makes the tap persistent and lets go of it; the guest's VMM (cloud-hypervisor)
//! opens it by name. Single-queue with a virtio-net header, which is what a VMM asks for
//! when it opens a tap with one queue pair.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::libc;

const TUN_DEVICE: &str = "/dev/net/tun";
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TAP_FLAGS: libc::c_short = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;

/// `struct ifreq` as TUNSETIFF reads it: the name, the flags, and the rest of the union.
#[repr(C)]
struct InterfaceRequest {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

// TUNSETIFF and TUNSETPERSIST are declared `_IOW('T', n, int)` although TUNSETIFF takes a
// `struct ifreq *`: the "bad" forms keep the kernel's numbers.
nix::ioctl_write_ptr_bad!(
    tun_set_iff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<libc::c_int>()),
    InterfaceRequest
);
nix::ioctl_write_int_bad!(
    tun_set_persist,
    nix::request_code_write!(b'T', 203, std::mem::size_of::<libc::c_int>())
);

fn request(name: &str) -> Result<InterfaceRequest, Errno> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(Errno::EINVAL);
    }
    let mut request = InterfaceRequest {
        name: [0; libc::IFNAMSIZ],
        flags: TAP_FLAGS,
        _rest: [0; 22],
    };
    request.name[..bytes.len()].copy_from_slice(bytes);
    Ok(request)
}

/// Attaches to the tap `name` (creating it when it does not exist) and sets whether it
/// outlives this file descriptor. Closing the descriptor of a tap that is not persistent
/// removes it.
fn set_persistent(name: &str, persistent: bool) -> Result<(), Errno> {
    let request = request(name)?;
    let device = OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_DEVICE)
        .map_err(|error| Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO)))?;
    // SAFETY: the descriptor is open for the duration of both calls, and `request` is a
    // properly laid-out, NUL-terminated ifreq that outlives the TUNSETIFF call.
    unsafe {
        tun_set_iff(device.as_raw_fd(), &request)?;
        tun_set_persist(device.as_raw_fd(), libc::c_int::from(persistent))?;
    }
    Ok(())
}

pub fn create_persistent_tap(name: &str) -> Result<(), Errno> {
    set_persistent(name, true)
}

/// Fails with EBUSY while a VMM still has the tap open.
pub fn delete_persistent_tap(name: &str) -> Result<(), Errno> {
    set_persistent(name, false)
}
