//! STARTTLS: a plain, open stream becomes a TLS one (`tlsContext.upgrade(socket)` in
//! JavaScript), a client if it connected, a server if it was accepted or adopted.
//!
//! Where the switch happens in the byte stream is the hard part. JavaScript calls `upgrade`
//! while dispatching some `Data` record; bytes the loop read after that one are already in
//! batches on their way to JavaScript (the peer may send its ClientHello at once). So the switch
//! takes two steps: the loop applies `Upgrade` (the transport becomes TLS, reading stops, and an
//! `Upgraded` record marks the point in the record stream), and JavaScript, when it reaches that
//! record, hands back what it held of this socket since its call (`head` first), which the
//! session reads before anything else (`UpgradeInput`). Output needs no such care: JavaScript
//! took the clear bytes still queued when it called `upgrade` (`SocketIo::begin_tls`), and
//! they go out before the first TLS record.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::ServerName;

use super::stream::{Phase, Stream, Transport, HANDSHAKE_TIMEOUT_STAMP};
use crate::event_loop::batch::EventKind;
use crate::event_loop::services::Services;
use crate::event_loop::timeouts::TimeoutKind;
use crate::tls::{TlsContext, TlsSession};

impl Stream {
    /// The transport becomes a TLS session of `context`: a client of `name`, or with `None` a
    /// server. `clear` (queued before the call) is sent first; a client's ClientHello follows at
    /// once. The handshake timeout of the context applies.
    pub(super) fn upgrade(
        &mut self,
        services: &mut Services,
        context: Arc<TlsContext>,
        name: Option<ServerName<'static>>,
        clear: Vec<u8>,
    ) {
        if self.is_tls() || !matches!(self.phase, Phase::Open) || self.io.is_none() {
            return;
        }
        let mut session = match name {
            Some(name) => match TlsSession::client(context, name) {
                Ok(session) => session,
                Err(failure) => return self.close_from_loop(services, failure.code()),
            },
            None => TlsSession::server(context),
        };
        session.send_first(clear);
        let timeout = Some(session.handshake_timeout());
        self.transport = Transport::Tls(Box::new(session));
        self.awaiting_read_ahead = true;
        self.upgrading = true;
        // JavaScript's timeouts of the plain socket end here; the handshake's bound replaces them.
        self.set_timeout(services, TimeoutKind::Long, None, 0);
        self.set_timeout(services, TimeoutKind::Short, timeout, HANDSHAKE_TIMEOUT_STAMP);
        services.events.push(EventKind::Upgraded, self.id.index, self.id.generation, 0);
        self.flush_tls(services);
    }

    /// JavaScript reached the `Upgraded` record: `read_ahead` is what it held back (the
    /// `head` it was given, then undelivered `Data`). The session reads it, then the socket.
    pub(super) fn upgrade_input(&mut self, services: &mut Services, read_ahead: &[u8]) {
        if !self.awaiting_read_ahead {
            return;
        }
        self.awaiting_read_ahead = false;
        if self.peer_finished {
            // The peer ended before it could have seen our side of the handshake.
            return self.close_from_loop(services, libc::ECONNRESET);
        }
        services.events.reserve_payload(read_ahead.len() + super::stream::TLS_RECORD_MARGIN);
        if self.tls_receive(services, read_ahead) {
            self.sync_interest(services);
        }
    }
}
