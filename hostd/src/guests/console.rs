//! The serial port relay: hostd holds cloud-hypervisor's serial socket for the guest's
//! whole life, appends everything the guest prints to `console.log` (so a boot that fails
//! before anyone looks is still on record, and `vm show` gives its last lines) and lets one
//! admin at a time attach through `console.sock` (`cairnctl vm console`). A newer attach
//! takes over from an older one, as a serial cable moved to another terminal would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// A log beyond this is moved to `console.log.1` (one old file kept): a chatty guest must
/// not fill the tmpfs.
const LOG_MAX_BYTES: u64 = 2 << 20;
/// cloud-hypervisor creates the serial socket while it creates the VM; give it that long.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Connects to the serial socket (retrying until it exists) and relays until the guest's
/// process closes it.
pub async fn relay(serial: PathBuf, log: PathBuf, listen: PathBuf) {
    let Some(mut guest) = connect(&serial).await else {
        tracing::warn!("no serial socket at {} to relay", serial.display());
        return;
    };
    let _ = std::fs::remove_file(&listen);
    let listener = match UnixListener::bind(&listen) {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(
                "cannot listen on {}: {error}; the console is logged only",
                listen.display()
            );
            None
        }
    };
    let mut admin: Option<UnixStream> = None;
    let mut from_guest = [0u8; 4096];
    let mut from_admin = [0u8; 1024];
    loop {
        tokio::select! {
            read = guest.read(&mut from_guest) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                append(&log, &from_guest[..n]);
                if let Some(stream) = admin.as_mut()
                    && stream.write_all(&from_guest[..n]).await.is_err()
                {
                    admin = None;
                }
            }
            accepted = accept(listener.as_ref()) => {
                if let Ok((stream, _)) = accepted {
                    admin = Some(stream);
                }
            }
            read = read_admin(admin.as_mut(), &mut from_admin) => {
                match read {
                    Ok(0) | Err(_) => admin = None,
                    Ok(n) => {
                        if guest.write_all(&from_admin[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_file(&listen);
}

async fn connect(path: &Path) -> Option<UnixStream> {
    let deadline = tokio::time::Instant::now() + CONNECT_DEADLINE;
    loop {
        if let Ok(stream) = UnixStream::connect(path).await {
            return Some(stream);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn accept(
    listener: Option<&UnixListener>,
) -> std::io::Result<(UnixStream, tokio::net::unix::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn read_admin(admin: Option<&mut UnixStream>, buffer: &mut [u8]) -> std::io::Result<usize> {
    match admin {
        Some(stream) => stream.read(buffer).await,
        None => std::future::pending().await,
    }
}

fn append(log: &Path, bytes: &[u8]) {
    use std::io::Write;
    if std::fs::metadata(log).is_ok_and(|m| m.len() > LOG_MAX_BYTES) {
        let _ = std::fs::rename(log, log.with_extension("log.1"));
    }
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = file.write_all(bytes);
    }
}

/// The last `n` lines of a text file (lossy UTF-8), without terminal control bytes.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            line.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
        })
        .filter(|line| !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_is_logged_and_an_admin_types_into_the_guest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let serial = dir.path().join("serial.sock");
        let log = dir.path().join("console.log");
        let listen = dir.path().join("console.sock");
        let vmm = UnixListener::bind(&serial).expect("binds");
        let relay = tokio::spawn(relay(serial, log.clone(), listen.clone()));
        let (mut guest, _) = vmm.accept().await.expect("the relay connects");
        guest.write_all(b"booting\n").await.expect("writes");
        // Attach once the relay listens.
        let mut admin = connect(&listen).await.expect("console socket");
        guest.write_all(b"login: ").await.expect("writes");
        let mut seen = [0u8; 7];
        admin
            .read_exact(&mut seen)
            .await
            .expect("the admin sees output");
        assert_eq!(&seen, b"login: ");
        admin.write_all(b"root\n").await.expect("types");
        let mut typed = [0u8; 5];
        guest
            .read_exact(&mut typed)
            .await
            .expect("the guest gets input");
        assert_eq!(&typed, b"root\n");
        drop(guest);
        relay.await.expect("the relay ends with the guest");
        assert_eq!(tail(&log, 5), ["booting", "login: "]);
    }
}
