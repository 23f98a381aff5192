//! The admission gate in front of gossipsub: gossipsub learns of a connection only once
//! its peer has been admitted (its certificate checked), so a peer that is not admitted
//! is never told our subscriptions, never put in a mesh and never sent a message, and
//! what it sends is held (a bounded number of events) until it is admitted, or dropped
//! with the connection. Every other part of the behaviour is gossipsub's own.

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::gossipsub;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::task::{Context, Poll};

/// Events held per peer waiting for admission; later ones are dropped.
const HELD_EVENTS: usize = 64;

type Inner = gossipsub::Behaviour;

#[derive(Default)]
struct Held {
    conns: Vec<(ConnectionId, libp2p::core::ConnectedPoint)>,
    events: VecDeque<(ConnectionId, THandlerOutEvent<Inner>)>,
}

/// Gossipsub behind the admission gate.
pub struct Gate {
    pub inner: Inner,
    admitted: HashSet<PeerId>,
    held: HashMap<PeerId, Held>,
    /// Events dropped because a peer waiting for admission sent too many.
    pub overflow: u64,
}

impl Gate {
    pub fn new(inner: Inner) -> Gate {
        Gate {
            inner,
            admitted: HashSet::new(),
            held: HashMap::new(),
            overflow: 0,
        }
    }

    /// Lets `peer` through: gossipsub now hears of its connections and what it sent.
    pub fn admit(&mut self, peer: PeerId) {
        if !self.admitted.insert(peer) {
            return;
        }
        let Some(held) = self.held.remove(&peer) else {
            return;
        };
        for (i, (connection_id, endpoint)) in held.conns.iter().enumerate() {
            self.inner
                .on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                    peer_id: peer,
                    connection_id: *connection_id,
                    endpoint,
                    failed_addresses: &[],
                    other_established: i,
                }));
        }
        for (connection_id, ev) in held.events {
            self.inner
                .on_connection_handler_event(peer, connection_id, ev);
        }
    }

    /// Forgets the admission of a peer whose last connection closed: the next connection
    /// goes through the exchange again.
    fn forget(&mut self, peer: &PeerId) {
        self.admitted.remove(peer);
        self.held.remove(peer);
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = <Inner as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = gossipsub::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) if !self.admitted.contains(&e.peer_id) => {
                self.held
                    .entry(e.peer_id)
                    .or_default()
                    .conns
                    .push((e.connection_id, e.endpoint.clone()));
            }
            FromSwarm::ConnectionClosed(c) => {
                if let Some(h) = self.held.get_mut(&c.peer_id) {
                    h.conns.retain(|(id, _)| *id != c.connection_id);
                    h.events.retain(|(id, _)| *id != c.connection_id);
                }
                self.inner.on_swarm_event(event);
                if c.remaining_established == 0 {
                    self.forget(&c.peer_id);
                }
            }
            _ => self.inner.on_swarm_event(event),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        if self.admitted.contains(&peer_id) {
            self.inner
                .on_connection_handler_event(peer_id, connection_id, event);
            return;
        }
        let held = self.held.entry(peer_id).or_default();
        if held.events.len() < HELD_EVENTS {
            held.events.push_back((connection_id, event));
        } else {
            self.overflow += 1;
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}
