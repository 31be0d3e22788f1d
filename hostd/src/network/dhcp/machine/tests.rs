use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 50);

fn sent(outputs: &[Output]) -> Vec<(MessageType, Target, u32)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send { message, to } => Some((
                message.opts().msg_type().expect("typed"),
                *to,
                message.xid(),
            )),
            _ => None,
        })
        .collect()
}

/// A server's reply to `request` as dnsmasq would build it, with a 120 s lease, T1 at
/// 30 s and T2 at 90 s.
fn reply(request: &Message, kind: MessageType, address: Ipv4Addr) -> Message {
    let mut message = Message::new_with_id(
        request.xid(),
        Ipv4Addr::UNSPECIFIED,
        address,
        SERVER,
        Ipv4Addr::UNSPECIFIED,
        &MAC,
    );
    message.set_opcode(Opcode::BootReply);
    let options = message.opts_mut();
    options.insert(DhcpOption::MessageType(kind));
    options.insert(DhcpOption::ServerIdentifier(SERVER));
    options.insert(DhcpOption::AddressLeaseTime(120));
    options.insert(DhcpOption::Renewal(30));
    options.insert(DhcpOption::Rebinding(90));
    options.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
    options.insert(DhcpOption::Router(vec![SERVER]));
    options.insert(DhcpOption::DomainNameServer(vec![SERVER]));
    message
}

fn last_message(outputs: &[Output]) -> Message {
    outputs
        .iter()
        .rev()
        .find_map(|output| match output {
            Output::Send { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("a message was sent")
}

/// A client bound at `t0`, and the lease it holds.
fn bound(t0: Instant) -> (Client, Lease) {
    let mut client = Client::new(MAC, 7);
    let discover = last_message(&client.start(t0));
    let request =
        last_message(&client.on_message(t0, &reply(&discover, MessageType::Offer, OFFERED)));
    let outputs = client.on_message(t0, &reply(&request, MessageType::Ack, OFFERED));
    let lease = match outputs.as_slice() {
        [
            Output::Bind {
                lease,
                renewal: false,
            },
        ] => lease.clone(),
        other => panic!("expected one bind, got {other:?}"),
    };
    (client, lease)
}

#[test]
fn discover_offer_request_ack_binds_the_lease_with_its_options() {
    let t0 = Instant::now();
    let mut client = Client::new(MAC, 7);
    let outputs = client.start(t0);
    assert_eq!(
        sent(&outputs),
        [(MessageType::Discover, Target::Broadcast, 7)]
    );
    let discover = last_message(&outputs);
    assert!(
        discover.flags().broadcast(),
        "no address yet: replies must be broadcast"
    );
    assert_eq!(discover.chaddr(), &MAC[..]);
    assert_eq!(
        discover.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(vec![
            1, 0x52, 0x54, 0, 0x12, 0x34, 0x56
        ]))
    );

    let outputs = client.on_message(t0, &reply(&discover, MessageType::Offer, OFFERED));
    assert_eq!(
        sent(&outputs),
        [(MessageType::Request, Target::Broadcast, 7)]
    );
    let request = last_message(&outputs);
    assert!(request.flags().broadcast());
    assert_eq!(
        request.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(OFFERED))
    );
    assert_eq!(
        request.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(client.phase(), Phase::Requesting);

    let later = t0 + Duration::from_millis(300);
    let outputs = client.on_message(later, &reply(&request, MessageType::Ack, OFFERED));
    let [
        Output::Bind {
            lease,
            renewal: false,
        },
    ] = outputs.as_slice()
    else {
        panic!("{outputs:?}");
    };
    assert_eq!(lease.address, OFFERED);
    assert_eq!(lease.prefix, 24);
    assert_eq!(lease.server, SERVER);
    assert_eq!(lease.routers, [SERVER]);
    assert_eq!(lease.dns, [SERVER]);
    assert_eq!(lease.obtained, t0, "lease time counts from the REQUEST");
    assert_eq!(lease.renews_at(), t0 + Duration::from_secs(30));
    assert_eq!(client.deadline(), Some(t0 + Duration::from_secs(30)));
    assert_eq!(client.phase(), Phase::Bound);
}

#[test]
fn replies_for_other_clients_or_transactions_are_ignored() {
    let t0 = Instant::now();
    let mut client = Client::new(MAC, 7);
    let discover = last_message(&client.start(t0));
    let mut other_xid = reply(&discover, MessageType::Offer, OFFERED);
    other_xid.set_xid(99);
    assert!(client.on_message(t0, &other_xid).is_empty());
    let mut other_mac = reply(&discover, MessageType::Offer, OFFERED);
    other_mac.set_chaddr(&[1, 2, 3, 4, 5, 6]);
    assert!(client.on_message(t0, &other_mac).is_empty());
    let ack_while_selecting = reply(&discover, MessageType::Ack, OFFERED);
    assert!(client.on_message(t0, &ack_while_selecting).is_empty());
    assert_eq!(client.phase(), Phase::Selecting);
}

#[test]
fn discover_is_retransmitted_with_a_doubling_delay_up_to_the_cap() {
    let t0 = Instant::now();
    let mut client = Client::new(MAC, 7);
    client.start(t0);
    let mut now = t0;
    let mut gaps = Vec::new();
    for _ in 0..5 {
        let deadline = client.deadline().expect("selecting has a deadline");
        gaps.push((deadline - now).as_secs());
        now = deadline;
        assert!(
            client.on_timer(now - Duration::from_millis(1)).is_empty(),
            "early: nothing"
        );
        assert_eq!(
            sent(&client.on_timer(now)),
            [(MessageType::Discover, Target::Broadcast, 7)]
        );
    }
    assert_eq!(gaps, [4, 8, 16, 16, 16]);
}

#[test]
fn t1_renews_by_unicast_and_the_ack_extends_the_lease() {
    let t0 = Instant::now();
    let (mut client, lease) = bound(t0);
    let t1 = lease.renews_at();
    let outputs = client.on_timer(t1);
    assert_eq!(
        sent(&outputs),
        [(MessageType::Request, Target::Server(SERVER), 8)]
    );
    let renew = last_message(&outputs);
    assert_eq!(
        renew.ciaddr(),
        OFFERED,
        "renewing names its address in ciaddr"
    );
    assert!(!renew.flags().broadcast());
    assert_eq!(renew.opts().get(OptionCode::ServerIdentifier), None);
    assert_eq!(renew.opts().get(OptionCode::RequestedIpAddress), None);
    assert_eq!(client.phase(), Phase::Renewing);

    let outputs = client.on_message(t1, &reply(&renew, MessageType::Ack, OFFERED));
    let [
        Output::Bind {
            lease: renewed,
            renewal: true,
        },
    ] = outputs.as_slice()
    else {
        panic!("{outputs:?}");
    };
    assert_eq!(renewed.obtained, t1);
    assert_eq!(client.deadline(), Some(t1 + Duration::from_secs(30)));
}

#[test]
fn no_answer_rebinds_at_t2_and_expiry_removes_the_address() {
    let t0 = Instant::now();
    let (mut client, lease) = bound(t0);
    client.on_timer(lease.renews_at());
    // Renewing retries at half the time left before T2 (60 s left: after 30 s).
    assert_eq!(client.deadline(), Some(t0 + Duration::from_secs(60)));
    let outputs = client.on_timer(t0 + Duration::from_secs(60));
    assert_eq!(
        sent(&outputs),
        [(MessageType::Request, Target::Server(SERVER), 8)]
    );
    // …more often as T2 nears, until T2, when it asks any server by broadcast.
    let mut outputs = Vec::new();
    let mut now = t0;
    while client.phase() == Phase::Renewing {
        now = client.deadline().expect("renewing has a deadline");
        outputs = client.on_timer(now);
    }
    assert_eq!(now, lease.rebinds_at());
    assert_eq!(
        sent(&outputs),
        [(MessageType::Request, Target::Broadcast, 9)]
    );
    assert!(matches!(outputs[0], Output::Warn(_)));
    assert_eq!(client.phase(), Phase::Rebinding);
    // Retries until expiry, then the lease is gone and the client starts over.
    let mut unbound = None;
    for _ in 0..10 {
        now = client.deadline().expect("rebinding has a deadline");
        let outputs = client.on_timer(now);
        if let Some(why) = outputs.iter().find_map(|o| match o {
            Output::Unbind { why, .. } => Some(*why),
            _ => None,
        }) {
            unbound = Some(why);
            assert_eq!(sent(&outputs)[0].0, MessageType::Discover);
            break;
        }
    }
    assert_eq!(unbound, Some(Unbound::Expired));
    assert_eq!(now, lease.expires_at());
    assert_eq!(client.phase(), Phase::Selecting);
    assert_eq!(client.lease(), None);
}

#[test]
fn a_nak_while_renewing_drops_the_lease_and_starts_over() {
    let t0 = Instant::now();
    let (mut client, lease) = bound(t0);
    let renew = last_message(&client.on_timer(lease.renews_at()));
    let outputs = client.on_message(lease.renews_at(), &reply(&renew, MessageType::Nak, OFFERED));
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Unbind {
            why: Unbound::Refused,
            ..
        }
    )));
    assert_eq!(sent(&outputs)[0].0, MessageType::Discover);
}

#[test]
fn release_tells_the_server_and_removes_the_address() {
    let t0 = Instant::now();
    let (mut client, lease) = bound(t0);
    let outputs = client.release();
    assert_eq!(
        sent(&outputs),
        [(MessageType::Release, Target::Server(SERVER), 8)]
    );
    let release = last_message(&outputs);
    assert_eq!(release.ciaddr(), lease.address);
    assert_eq!(
        release.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert!(matches!(
        outputs[1],
        Output::Unbind {
            why: Unbound::Released,
            ..
        }
    ));
    assert_eq!(client.phase(), Phase::Stopped);
    assert_eq!(client.deadline(), None);
    // Nothing to release without a lease.
    assert!(Client::new(MAC, 1).release().is_empty());
}

#[test]
fn messages_encode_and_decode_through_the_wire_format() {
    use dhcproto::{Decodable, Encodable};
    let mut client = Client::new(MAC, 7);
    let discover = last_message(&client.start(Instant::now()));
    let bytes = discover.to_vec().expect("encodes");
    assert_eq!(Message::from_bytes(&bytes).expect("decodes"), discover);
}

#[test]
fn a_lease_without_t1_t2_uses_the_rfc_defaults_and_a_bad_mask_a_24() {
    let t0 = Instant::now();
    let mut client = Client::new(MAC, 7);
    let discover = last_message(&client.start(t0));
    let request =
        last_message(&client.on_message(t0, &reply(&discover, MessageType::Offer, OFFERED)));
    let mut ack = reply(&request, MessageType::Ack, OFFERED);
    ack.opts_mut().remove(OptionCode::Renewal);
    ack.opts_mut().remove(OptionCode::Rebinding);
    ack.opts_mut()
        .insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 0, 255, 0)));
    let outputs = client.on_message(t0, &ack);
    let [Output::Bind { lease, .. }] = outputs.as_slice() else {
        panic!("{outputs:?}");
    };
    assert_eq!((lease.t1.as_secs(), lease.t2.as_secs()), (60, 105));
    assert_eq!(lease.prefix, 24);
}
