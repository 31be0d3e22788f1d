//! The DHCPv4 client protocol (RFC 2131) as a pure state machine: events in (a start, a
//! received message, a timer, a stop), messages to send and lease changes out. No sockets,
//! no clock and no randomness of its own: the caller passes `now` and the transaction ids,
//! so every path (renew at T1, rebind at T2, expiry, NAK, release) is unit-tested.
//!
//! States: Selecting (DISCOVER, waiting for an OFFER) → Requesting (REQUEST, waiting for
//! the ACK) → Bound → at T1 Renewing (REQUEST unicast to the server) → at T2 Rebinding
//! (REQUEST broadcast to any server) → at expiry the lease is dropped and Selecting starts
//! again. A NAK anywhere drops the lease at once. Until it has an address the client asks
//! for broadcast replies (the flag in `flags`): the kernel does not deliver a unicast to an
//! address the interface does not have yet.
//!
//! Not done: ARP probing of an offered address (DECLINE), INIT-REBOOT with a remembered
//! address, randomised retransmission delays (one client per box: no herd to spread).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};

/// First retransmission delay of DISCOVER and REQUEST (RFC 2131 4.1: 4 s, then doubling).
const FIRST_RETRY: Duration = Duration::from_secs(4);
/// RFC 2131 lets the delay grow to 64 s; 16 s keeps a box whose DHCP server comes up late
/// (the switch, the router after a power cut) from waiting a minute more than it must.
const MAX_RETRY: Duration = Duration::from_secs(16);
/// REQUESTs sent for one OFFER before starting over with a DISCOVER (RFC 2131 3.1.5).
const REQUEST_TRIES: u32 = 4;
/// While renewing or rebinding, the client retries at half the time left (RFC 2131 4.4.5);
/// the RFC's floor is 60 s, which is longer than the whole renew window of a short lease,
/// so the floor here is a few seconds.
const MIN_RENEW_RETRY: Duration = Duration::from_secs(5);
/// Without a subnet mask option the client assumes this prefix: a lease with no mask is a
/// server misconfiguration, and /24 is what such networks almost always are.
const DEFAULT_PREFIX: u8 = 24;

/// One lease as the server granted it; times count from the REQUEST that obtained it
/// (RFC 2131 4.4.1), so a slow ACK never makes the lease look longer than it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub obtained: Instant,
    pub duration: Duration,
    pub t1: Duration,
    pub t2: Duration,
}

impl Lease {
    pub fn renews_at(&self) -> Instant {
        self.obtained + self.t1
    }

    pub fn rebinds_at(&self) -> Instant {
        self.obtained + self.t2
    }

    pub fn expires_at(&self) -> Instant {
        self.obtained + self.duration
    }

    /// Seconds the lease has left at `now`, for the address's lifetimes.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at().saturating_duration_since(now)
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// 255.255.255.255 on the interface.
    Broadcast,
    /// The server that granted the lease (renewing, releasing).
    Server(Ipv4Addr),
}

/// Why a lease stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbound {
    Expired,
    Refused,
    Released,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send {
        message: Message,
        to: Target,
    },
    /// Configure the lease (a new one, or a renewal of the same address).
    Bind {
        lease: Lease,
        renewal: bool,
    },
    /// Remove the lease's address, route and DNS servers.
    Unbind {
        lease: Lease,
        why: Unbound,
    },
    /// Something failed that an admin may want to know about.
    Warn(String),
}

/// The phase, for the status the API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
    Stopped,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Selecting => "selecting",
            Self::Requesting => "requesting",
            Self::Bound => "bound",
            Self::Renewing => "renewing",
            Self::Rebinding => "rebinding",
            Self::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone)]
struct Offer {
    address: Ipv4Addr,
    server: Ipv4Addr,
}

#[derive(Debug, Clone)]
enum State {
    Selecting {
        xid: u32,
        next: Instant,
        delay: Duration,
    },
    Requesting {
        xid: u32,
        offer: Offer,
        sent: Instant,
        next: Instant,
        tries: u32,
    },
    Bound {
        lease: Lease,
    },
    Renewing {
        xid: u32,
        lease: Lease,
        sent: Instant,
        next: Instant,
    },
    Rebinding {
        xid: u32,
        lease: Lease,
        sent: Instant,
        next: Instant,
    },
    Stopped,
}

/// The client for one interface (its hardware address).
#[derive(Debug, Clone)]
pub struct Client {
    mac: [u8; 6],
    state: State,
    /// Transaction ids: the caller seeds it at random, each new exchange takes the next.
    next_xid: u32,
}

impl Client {
    /// A stopped client; [`Client::start`] sends the first DISCOVER.
    pub fn new(mac: [u8; 6], xid_seed: u32) -> Self {
        Self {
            mac,
            state: State::Stopped,
            next_xid: xid_seed,
        }
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Selecting { .. } => Phase::Selecting,
            State::Requesting { .. } => Phase::Requesting,
            State::Bound { .. } => Phase::Bound,
            State::Renewing { .. } => Phase::Renewing,
            State::Rebinding { .. } => Phase::Rebinding,
            State::Stopped => Phase::Stopped,
        }
    }

    /// The lease held now (bound, renewing or rebinding).
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound { lease }
            | State::Renewing { lease, .. }
            | State::Rebinding { lease, .. } => Some(lease),
            State::Selecting { .. } | State::Requesting { .. } | State::Stopped => None,
        }
    }

    /// When [`Client::on_timer`] must be called next; `None` when stopped.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Selecting { next, .. } | State::Requesting { next, .. } => Some(*next),
            State::Bound { lease } => Some(lease.renews_at()),
            State::Renewing { next, lease, .. } => Some((*next).min(lease.rebinds_at())),
            State::Rebinding { next, lease, .. } => Some((*next).min(lease.expires_at())),
            State::Stopped => None,
        }
    }

    /// Starts over from Selecting: sends a DISCOVER.
    pub fn start(&mut self, now: Instant) -> Vec<Output> {
        self.discover(now, FIRST_RETRY)
    }

    fn take_xid(&mut self) -> u32 {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        xid
    }

    fn discover(&mut self, now: Instant, delay: Duration) -> Vec<Output> {
        let xid = self.take_xid();
        let mut message = self.message(xid, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
        message.set_flags(Flags::default().set_broadcast());
        self.state = State::Selecting {
            xid,
            next: now + delay,
            delay,
        };
        vec![Output::Send {
            message,
            to: Target::Broadcast,
        }]
    }

    /// The timer fired (a retransmission, T1, T2 or expiry is due). Calls before the
    /// deadline change nothing.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Output> {
        if self.deadline().is_none_or(|deadline| now < deadline) {
            return Vec::new();
        }
        match self.state.clone() {
            State::Selecting { xid, delay, .. } => {
                // Same transaction: a late OFFER to the first DISCOVER is still welcome.
                let mut message = self.message(xid, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
                message.set_flags(Flags::default().set_broadcast());
                let delay = (delay * 2).min(MAX_RETRY);
                self.state = State::Selecting {
                    xid,
                    next: now + delay,
                    delay,
                };
                vec![Output::Send {
                    message,
                    to: Target::Broadcast,
                }]
            }
            State::Requesting {
                xid,
                offer,
                sent,
                tries,
                ..
            } => {
                if tries >= REQUEST_TRIES {
                    let mut out = vec![Output::Warn(format!(
                        "no answer from DHCP server {} to {tries} requests for {}; asking again",
                        offer.server, offer.address
                    ))];
                    out.extend(self.discover(now, FIRST_RETRY));
                    return out;
                }
                let message = self.selecting_request(xid, &offer);
                let delay = (FIRST_RETRY * 2u32.pow(tries)).min(MAX_RETRY);
                self.state = State::Requesting {
                    xid,
                    offer,
                    sent,
                    next: now + delay,
                    tries: tries + 1,
                };
                vec![Output::Send {
                    message,
                    to: Target::Broadcast,
                }]
            }
            State::Bound { lease } => {
                // T1: ask the server that granted the lease, directly.
                let xid = self.take_xid();
                let message = self.message(xid, MessageType::Request, lease.address);
                let next = now + retry_within(now, lease.rebinds_at());
                let to = Target::Server(lease.server);
                self.state = State::Renewing {
                    xid,
                    lease,
                    sent: now,
                    next,
                };
                vec![Output::Send { message, to }]
            }
            State::Renewing { xid, lease, .. } => {
                if now >= lease.rebinds_at() {
                    // T2: the server did not answer; any server may extend the lease.
                    let xid = self.take_xid();
                    let message = self.message(xid, MessageType::Request, lease.address);
                    let next = now + retry_within(now, lease.expires_at());
                    self.state = State::Rebinding {
                        xid,
                        lease: lease.clone(),
                        sent: now,
                        next,
                    };
                    return vec![
                        Output::Warn(format!(
                            "DHCP server {} did not renew the lease of {} by T2; rebinding (asking any server)",
                            lease.server, lease.address
                        )),
                        Output::Send {
                            message,
                            to: Target::Broadcast,
                        },
                    ];
                }
                let message = self.message(xid, MessageType::Request, lease.address);
                let to = Target::Server(lease.server);
                let next = now + retry_within(now, lease.rebinds_at());
                self.state = State::Renewing {
                    xid,
                    lease,
                    sent: now,
                    next,
                };
                vec![Output::Send { message, to }]
            }
            State::Rebinding { xid, lease, .. } => {
                if now >= lease.expires_at() {
                    let mut out = vec![
                        Output::Warn(format!(
                            "the DHCP lease of {} expired without a renewal; the address is removed",
                            lease.address
                        )),
                        Output::Unbind {
                            lease,
                            why: Unbound::Expired,
                        },
                    ];
                    out.extend(self.discover(now, FIRST_RETRY));
                    return out;
                }
                let message = self.message(xid, MessageType::Request, lease.address);
                let next = now + retry_within(now, lease.expires_at());
                self.state = State::Rebinding {
                    xid,
                    lease,
                    sent: now,
                    next,
                };
                vec![Output::Send {
                    message,
                    to: Target::Broadcast,
                }]
            }
            State::Stopped => Vec::new(),
        }
    }

    /// A message arrived on the client port. Anything not for this client and this
    /// transaction is ignored (other clients' replies are broadcast too).
    pub fn on_message(&mut self, now: Instant, message: &Message) -> Vec<Output> {
        if message.opcode() != Opcode::BootReply || message.chaddr().get(..6) != Some(&self.mac[..])
        {
            return Vec::new();
        }
        let Some(kind) = message.opts().msg_type() else {
            return Vec::new();
        };
        let server = match message.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(server)) => Some(*server),
            _ => None,
        };
        match (self.state.clone(), kind) {
            (State::Selecting { xid, .. }, MessageType::Offer) if message.xid() == xid => {
                let address = message.yiaddr();
                let Some(server) = server.filter(|_| !address.is_unspecified()) else {
                    return Vec::new();
                };
                let offer = Offer { address, server };
                let request = self.selecting_request(xid, &offer);
                self.state = State::Requesting {
                    xid,
                    offer,
                    sent: now,
                    next: now + FIRST_RETRY,
                    tries: 1,
                };
                vec![Output::Send {
                    message: request,
                    to: Target::Broadcast,
                }]
            }
            (
                State::Requesting {
                    xid, offer, sent, ..
                },
                MessageType::Ack,
            ) if message.xid() == xid && server.is_none_or(|s| s == offer.server) => {
                match lease_from(message, sent, offer.server) {
                    Some(lease) => {
                        self.state = State::Bound {
                            lease: lease.clone(),
                        };
                        vec![Output::Bind {
                            lease,
                            renewal: false,
                        }]
                    }
                    None => {
                        let mut out = vec![Output::Warn(format!(
                            "DHCP server {} acknowledged without an address or lease time; asking again",
                            offer.server
                        ))];
                        out.extend(self.discover(now, FIRST_RETRY));
                        out
                    }
                }
            }
            (State::Requesting { xid, offer, .. }, MessageType::Nak) if message.xid() == xid => {
                let mut out = vec![Output::Warn(format!(
                    "DHCP server {} refused {} (NAK); asking again",
                    offer.server, offer.address
                ))];
                out.extend(self.discover(now, FIRST_RETRY));
                out
            }
            (
                State::Renewing {
                    xid, lease, sent, ..
                }
                | State::Rebinding {
                    xid, lease, sent, ..
                },
                MessageType::Ack,
            ) if message.xid() == xid => {
                let server = server.unwrap_or(lease.server);
                let Some(renewed) = lease_from(message, sent, server) else {
                    return Vec::new();
                };
                let mut out = Vec::new();
                let renewal = renewed.address == lease.address && renewed.prefix == lease.prefix;
                if !renewal {
                    out.push(Output::Unbind {
                        lease,
                        why: Unbound::Refused,
                    });
                }
                self.state = State::Bound {
                    lease: renewed.clone(),
                };
                out.push(Output::Bind {
                    lease: renewed,
                    renewal,
                });
                out
            }
            (
                State::Renewing { xid, lease, .. } | State::Rebinding { xid, lease, .. },
                MessageType::Nak,
            ) if message.xid() == xid => {
                let mut out = vec![
                    Output::Warn(format!(
                        "DHCP server refused to extend the lease of {} (NAK); the address is removed",
                        lease.address
                    )),
                    Output::Unbind {
                        lease,
                        why: Unbound::Refused,
                    },
                ];
                out.extend(self.discover(now, FIRST_RETRY));
                out
            }
            _ => Vec::new(),
        }
    }

    /// Gives the lease back (the document stopped asking for DHCP, or hostd stops): a
    /// RELEASE to the server, then the address comes off. Stops the client either way.
    pub fn release(&mut self) -> Vec<Output> {
        let lease = self.lease().cloned();
        self.state = State::Stopped;
        let Some(lease) = lease else {
            return Vec::new();
        };
        let xid = self.take_xid();
        let mut message = self.message(xid, MessageType::Release, lease.address);
        // A RELEASE carries only the server identifier besides the type (RFC 2131 table 5).
        message.opts_mut().remove(OptionCode::ParameterRequestList);
        message
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(lease.server));
        vec![
            Output::Send {
                message,
                to: Target::Server(lease.server),
            },
            Output::Unbind {
                lease,
                why: Unbound::Released,
            },
        ]
    }

    /// The REQUEST that answers an OFFER: it names the server and the address (broadcast,
    /// so the other servers that offered see the choice).
    fn selecting_request(&self, xid: u32, offer: &Offer) -> Message {
        let mut message = self.message(xid, MessageType::Request, Ipv4Addr::UNSPECIFIED);
        message.set_flags(Flags::default().set_broadcast());
        message
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.address));
        message
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(offer.server));
        message
    }

    fn message(&self, xid: u32, kind: MessageType, ciaddr: Ipv4Addr) -> Message {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let mut message = Message::new_with_id(
            xid,
            ciaddr,
            unspecified,
            unspecified,
            unspecified,
            &self.mac,
        );
        message
            .set_opcode(Opcode::BootRequest)
            .set_htype(HType::Eth);
        let options = message.opts_mut();
        options.insert(DhcpOption::MessageType(kind));
        // Type 1 (Ethernet) + the MAC: the identifier servers key leases by (RFC 2132 9.14),
        // the same one before and after a reboot.
        let mut client_id = vec![1];
        client_id.extend_from_slice(&self.mac);
        options.insert(DhcpOption::ClientIdentifier(client_id));
        options.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        message
    }
}

/// Half the time left until `limit`, at least [`MIN_RENEW_RETRY`], never past `limit`.
fn retry_within(now: Instant, limit: Instant) -> Duration {
    let left = limit.saturating_duration_since(now);
    (left / 2)
        .max(MIN_RENEW_RETRY)
        .min(left.max(Duration::from_millis(1)))
}

/// The lease an ACK grants: an address, a lease time, and T1/T2 from the server or the
/// RFC's defaults (half and seven eighths of the lease) when it sends none or nonsense.
fn lease_from(message: &Message, sent: Instant, server: Ipv4Addr) -> Option<Lease> {
    let address = message.yiaddr();
    if address.is_unspecified() {
        return None;
    }
    let options = message.opts();
    let seconds = |code| match options.get(code) {
        Some(
            DhcpOption::AddressLeaseTime(s) | DhcpOption::Renewal(s) | DhcpOption::Rebinding(s),
        ) => Some(Duration::from_secs(u64::from(*s))),
        _ => None,
    };
    let duration = seconds(OptionCode::AddressLeaseTime)?;
    let mut t1 = seconds(OptionCode::Renewal).unwrap_or(duration / 2);
    let mut t2 = seconds(OptionCode::Rebinding).unwrap_or(duration * 7 / 8);
    if !(t1 <= t2 && t2 <= duration) {
        t1 = duration / 2;
        t2 = duration * 7 / 8;
    }
    let prefix = match options.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => {
            let bits = u32::from(*mask);
            // A mask is contiguous ones; anything else is not a prefix.
            if bits.leading_ones() + bits.trailing_zeros() == 32 && bits != 0 {
                u8::try_from(bits.leading_ones()).unwrap_or(DEFAULT_PREFIX)
            } else {
                DEFAULT_PREFIX
            }
        }
        _ => DEFAULT_PREFIX,
    };
    let addresses = |code| match options.get(code) {
        Some(DhcpOption::Router(list) | DhcpOption::DomainNameServer(list)) => list.clone(),
        _ => Vec::new(),
    };
    Some(Lease {
        address,
        prefix,
        server,
        routers: addresses(OptionCode::Router),
        dns: addresses(OptionCode::DomainNameServer),
        obtained: sent,
        duration,
        t1,
        t2,
    })
}

#[cfg(test)]
mod tests;
