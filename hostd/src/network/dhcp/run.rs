//! The DHCP client's thin side: a task on hostd's runtime that owns the UDP socket and the
//! timer, feeds [`Client`] and carries out what it asks (send, bind, unbind, warn).
//!
//! The socket is bound to 0.0.0.0:68 with SO_BINDTODEVICE (replies for other interfaces
//! stay out, and the limited broadcast leaves through the management interface even before
//! it has an address) and SO_BROADCAST. The core says what to do through a watch channel
//! ([`DhcpHandle::follow`]): the interface and the document's DNS servers, or nothing
//! (release), or stop (release and end; hostd is stopping).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dhcproto::v4::{CLIENT_PORT, Message, SERVER_PORT};
use dhcproto::{Decodable, Encodable};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::kernel;
use super::machine::{Client, Lease, Output, Target, Unbound};
use super::status::{self, DhcpView};
use crate::state::Management;

/// How soon a missing interface (being built by an apply) or a failed socket is tried again.
const SOCKET_RETRY: Duration = Duration::from_secs(2);
/// How long a stopping hostd waits for the RELEASE to go out and the address to come off.
const STOP_DEADLINE: Duration = Duration::from_secs(3);
/// Large enough for any DHCP message on an Ethernet (1500-byte MTU) link.
const RECEIVE_BUFFER: usize = 1500;

/// What the client should serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpTarget {
    pub interface: String,
    /// The document's DNS servers: written before the lease's.
    pub dns: Vec<IpAddr>,
}

#[derive(Debug, Clone, Default)]
struct Want {
    target: Option<DhcpTarget>,
    /// Bumped by every `follow`, so that the same target after an apply still makes the
    /// client put its lease back (an apply may have rebuilt the interface under it).
    epoch: u64,
    stop: bool,
}

/// The core's side of the client: cheap to clone.
#[derive(Debug, Clone)]
pub struct DhcpHandle {
    want: Arc<watch::Sender<Want>>,
    status: watch::Receiver<Option<DhcpView>>,
}

impl DhcpHandle {
    /// Starts the client task on the current tokio runtime, idle until [`Self::follow`].
    pub fn spawn() -> (Self, JoinHandle<()>) {
        let (want, want_rx) = watch::channel(Want::default());
        let (status_tx, status) = watch::channel(None);
        let task = tokio::spawn(run(want_rx, status_tx));
        (
            Self {
                want: Arc::new(want),
                status,
            },
            task,
        )
    }

    /// A handle with no task behind it, and the sender of its status: for tests of the core.
    pub fn detached() -> (Self, watch::Sender<Option<DhcpView>>) {
        let (want, _) = watch::channel(Want::default());
        let (status_tx, status) = watch::channel(None);
        (
            Self {
                want: Arc::new(want),
                status,
            },
            status_tx,
        )
    }

    /// Serve DHCP as this management section says (none, or one without `dhcp4`: release).
    pub fn follow(&self, management: Option<&Management>) {
        let target = management.filter(|m| m.dhcp4).map(|m| DhcpTarget {
            interface: m.interface.to_string(),
            dns: m.dns.clone(),
        });
        self.want.send_modify(|want| {
            want.target = target;
            want.epoch += 1;
        });
    }

    /// The interface the client was last told to serve.
    pub fn target(&self) -> Option<DhcpTarget> {
        self.want.borrow().target.clone()
    }

    pub fn status(&self) -> Option<DhcpView> {
        self.status.borrow().clone()
    }

    /// Whether a lease is held on `interface` now.
    pub fn has_lease(&self, interface: &str) -> bool {
        self.status
            .borrow()
            .as_ref()
            .is_some_and(|view| view.interface == interface && view.has_lease())
    }

    /// Releases the lease and ends the task (hostd is stopping), waiting at most a few
    /// seconds: a stop must not hang on an unreachable server.
    pub async fn stop(&self, task: JoinHandle<()>) {
        self.want.send_modify(|want| want.stop = true);
        if tokio::time::timeout(STOP_DEADLINE, task).await.is_err() {
            tracing::warn!("the DHCP client did not stop within {STOP_DEADLINE:?}");
        }
    }
}

/// One interface being served.
struct Session {
    target: DhcpTarget,
    /// None until the interface exists and the socket opened.
    client: Option<Client>,
    socket: Option<UdpSocket>,
    retry_at: Instant,
    warned: bool,
}

impl Session {
    fn new(target: DhcpTarget) -> Self {
        Self {
            target,
            client: None,
            socket: None,
            retry_at: Instant::now(),
            warned: false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.client {
            Some(client) => client.deadline(),
            None => Some(self.retry_at),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SocketError {
    #[error("Cannot read the hardware address of {interface} from {path}")]
    Mac {
        interface: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds {text:?}, not a MAC address")]
    BadMac { path: String, text: String },
    #[error("Cannot open the DHCP socket on {interface} (UDP port 68)")]
    Open {
        interface: String,
        #[source]
        source: std::io::Error,
    },
}

fn read_mac(interface: &str) -> Result<[u8; 6], SocketError> {
    let path = format!("/sys/class/net/{interface}/address");
    let text = std::fs::read_to_string(&path).map_err(|source| SocketError::Mac {
        interface: interface.to_string(),
        path: path.clone(),
        source,
    })?;
    parse_mac(text.trim()).ok_or(SocketError::BadMac {
        path,
        text: text.trim().to_string(),
    })
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn open_socket(interface: &str) -> Result<UdpSocket, SocketError> {
    let open = || -> std::io::Result<UdpSocket> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        // A previous hostd's socket may linger for a moment after a restart.
        socket.set_reuse_address(true)?;
        socket.set_broadcast(true)?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket
            .bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT)).into())?;
        socket.set_nonblocking(true)?;
        UdpSocket::from_std(socket.into())
    };
    open().map_err(|source| SocketError::Open {
        interface: interface.to_string(),
        source,
    })
}

fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

enum Event {
    Want(bool),
    Received(std::io::Result<usize>),
    Timer,
}

async fn run(mut want: watch::Receiver<Want>, status: watch::Sender<Option<DhcpView>>) {
    let mut session: Option<Session> = None;
    let mut netlink: Option<rtnetlink::Handle> = None;
    let mut seen_epoch = 0;
    // Transaction ids only need to differ from other clients' and from our last run's.
    let mut seed = getrandom::u32().unwrap_or_else(|_| wall_now() as u32);
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    loop {
        let deadline = session.as_ref().and_then(Session::deadline);
        let socket = session.as_ref().and_then(|s| s.socket.as_ref());
        let event = tokio::select! {
            changed = want.changed() => Event::Want(changed.is_ok()),
            received = async {
                match socket {
                    Some(socket) => socket.recv(&mut buffer).await,
                    None => std::future::pending().await,
                }
            } => Event::Received(received),
            () = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            } => Event::Timer,
        };
        match event {
            Event::Want(alive) => {
                let wanted = want.borrow_and_update().clone();
                let stopping = wanted.stop || !alive;
                let same = session
                    .as_ref()
                    .zip(wanted.target.as_ref())
                    .is_some_and(|(s, t)| s.target.interface == t.interface);
                if same && !stopping {
                    if let (Some(current), Some(target)) = (session.as_mut(), wanted.target) {
                        current.target = target;
                        if wanted.epoch != seen_epoch {
                            reassert(current, &mut netlink).await;
                        }
                    }
                } else {
                    if let Some(mut old) = session.take() {
                        let outputs = old.client.as_mut().map(Client::release).unwrap_or_default();
                        carry_out(&old, outputs, &mut netlink).await;
                    }
                    if !stopping {
                        session = wanted.target.map(Session::new);
                    }
                }
                seen_epoch = wanted.epoch;
                if stopping {
                    status.send_replace(None);
                    return;
                }
            }
            Event::Received(Ok(length)) => {
                if let Some(current) = session.as_mut()
                    && let Some(client) = current.client.as_mut()
                    && let Ok(message) = Message::from_bytes(&buffer[..length])
                {
                    let outputs = client.on_message(Instant::now(), &message);
                    carry_out(current, outputs, &mut netlink).await;
                }
            }
            Event::Received(Err(error)) => {
                tracing::warn!("DHCP: receiving failed: {error}");
                // A broken socket is opened again on the next retry.
                if let Some(current) = session.as_mut() {
                    current.socket = None;
                    current.client = None;
                    current.retry_at = Instant::now() + SOCKET_RETRY;
                }
            }
            Event::Timer => {
                if let Some(current) = session.as_mut() {
                    let now = Instant::now();
                    if current.client.is_none() {
                        seed = seed.wrapping_add(0x9e37_79b9);
                        start(current, now, seed, &mut netlink).await;
                    } else if let Some(client) = current.client.as_mut() {
                        let outputs = client.on_timer(now);
                        carry_out(current, outputs, &mut netlink).await;
                    }
                }
            }
        }
        status.send_replace(session.as_ref().map(|s| {
            status::view(
                &s.target.interface,
                s.client.as_ref(),
                Instant::now(),
                wall_now(),
            )
        }));
    }
}

/// Opens the socket and sends the first DISCOVER, or schedules another try.
async fn start(
    session: &mut Session,
    now: Instant,
    seed: u32,
    netlink: &mut Option<rtnetlink::Handle>,
) {
    let interface = session.target.interface.clone();
    match read_mac(&interface).and_then(|mac| Ok((mac, open_socket(&interface)?))) {
        Ok((mac, socket)) => {
            tracing::info!("DHCP: asking for an address on {interface}");
            session.socket = Some(socket);
            let mut client = Client::new(mac, seed);
            let outputs = client.start(now);
            session.client = Some(client);
            carry_out(session, outputs, netlink).await;
        }
        Err(error) => {
            if !session.warned {
                tracing::warn!(
                    "DHCP: {}; trying again every {} s",
                    crate::error::chain(&error),
                    SOCKET_RETRY.as_secs()
                );
                session.warned = true;
            }
            session.retry_at = now + SOCKET_RETRY;
        }
    }
}

/// After an apply: the lease goes on the box again (the interface may have been rebuilt),
/// with the document's DNS servers as they are now.
async fn reassert(session: &Session, netlink: &mut Option<rtnetlink::Handle>) {
    if let Some(lease) = session.client.as_ref().and_then(Client::lease).cloned() {
        bind(session, &lease, netlink).await;
    }
}

fn handle(netlink: &mut Option<rtnetlink::Handle>) -> Option<rtnetlink::Handle> {
    if netlink.is_none() {
        match rtnetlink::new_connection() {
            Ok((connection, handle, _)) => {
                tokio::spawn(connection);
                *netlink = Some(handle);
            }
            Err(error) => tracing::warn!("DHCP: cannot open a netlink socket: {error}"),
        }
    }
    netlink.clone()
}

async fn bind(session: &Session, lease: &Lease, netlink: &mut Option<rtnetlink::Handle>) -> bool {
    let Some(handle) = handle(netlink) else {
        return false;
    };
    let remaining = lease.remaining(Instant::now()).as_secs();
    match kernel::bind(
        &handle,
        &session.target.interface,
        lease,
        remaining,
        &session.target.dns,
    )
    .await
    {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(
                "DHCP: cannot put the lease of {} on {}: {}",
                lease.address,
                session.target.interface,
                crate::error::chain(&error)
            );
            false
        }
    }
}

async fn carry_out(
    session: &Session,
    outputs: Vec<Output>,
    netlink: &mut Option<rtnetlink::Handle>,
) {
    let interface = &session.target.interface;
    for output in outputs {
        match output {
            Output::Send { message, to } => send(session, &message, to).await,
            Output::Bind { lease, renewal } => {
                if bind(session, &lease, netlink).await {
                    let verb = if renewal { "renewed" } else { "obtained" };
                    tracing::info!(
                        "DHCP: {verb} {}/{} on {interface} from server {} (lease {} s, renews in {} s, router {}, dns {})",
                        lease.address,
                        lease.prefix,
                        lease.server,
                        lease.duration.as_secs(),
                        lease.t1.as_secs(),
                        lease
                            .routers
                            .first()
                            .map_or_else(|| "none".to_string(), ToString::to_string),
                        if lease.dns.is_empty() {
                            "none".to_string()
                        } else {
                            lease
                                .dns
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    );
                }
            }
            Output::Unbind { lease, why } => {
                let result = match handle(netlink) {
                    Some(handle) => {
                        kernel::unbind(&handle, interface, &lease, &session.target.dns).await
                    }
                    None => Ok(()),
                };
                match (result, why) {
                    (Ok(()), Unbound::Released) => tracing::info!(
                        "DHCP: released {}/{} on {interface} to server {}",
                        lease.address,
                        lease.prefix,
                        lease.server
                    ),
                    (Ok(()), Unbound::Expired) => tracing::info!(
                        "DHCP: the lease of {} expired; removed it from {interface}",
                        lease.address
                    ),
                    (Ok(()), Unbound::Refused) => tracing::info!(
                        "DHCP: removed {} from {interface}: the server refused or moved the lease",
                        lease.address
                    ),
                    (Err(error), _) => tracing::warn!(
                        "DHCP: cannot remove the lease of {} from {interface}: {}",
                        lease.address,
                        crate::error::chain(&error)
                    ),
                }
            }
            Output::Warn(text) => tracing::warn!("DHCP on {interface}: {text}"),
        }
    }
}

async fn send(session: &Session, message: &Message, to: Target) {
    let Some(socket) = session.socket.as_ref() else {
        return;
    };
    let destination = match to {
        Target::Broadcast => Ipv4Addr::BROADCAST,
        Target::Server(server) => server,
    };
    let bytes = match message.to_vec() {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!("DHCP: cannot encode a message: {error}");
            return;
        }
    };
    if let Err(error) = socket
        .send_to(&bytes, SocketAddrV4::new(destination, SERVER_PORT))
        .await
    {
        tracing::warn!(
            "DHCP: cannot send to {destination} on {}: {error}",
            session.target.interface
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_says_which_interface_and_reads_the_lease_back() {
        let document = crate::state::DesiredState::from_toml(
            "version = 1\n[network.management]\ninterface = \"lan1\"\ndhcp4 = true\ndns = [\"9.9.9.9\"]\n",
        )
        .expect("valid");
        let (handle, status) = DhcpHandle::detached();
        handle.follow(document.network.management.as_ref());
        assert_eq!(
            handle.target(),
            Some(DhcpTarget {
                interface: "lan1".into(),
                dns: vec!["9.9.9.9".parse().expect("ip")],
            })
        );
        assert!(!handle.has_lease("lan1"));
        let mut view = status::view("lan1", None, Instant::now(), 0);
        view.address = Some("10.0.0.5/24".into());
        status.send_replace(Some(view));
        assert!(handle.has_lease("lan1"));
        assert!(
            !handle.has_lease("vmnet"),
            "a lease on another interface is no lease"
        );
        // A static document releases.
        handle.follow(None);
        assert_eq!(handle.target(), None);
    }

    #[test]
    fn macs_parse_from_sysfs_text() {
        assert_eq!(
            parse_mac("52:54:00:12:34:5a"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x5a])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:5a:00"), None);
        assert_eq!(parse_mac("zz:54:00:12:34:5a"), None);
    }
}
