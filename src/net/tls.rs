//! The TLS transport of a stream: ciphertext read from the socket goes through its session
//! (plaintext becomes `Data`, the completed handshake `Open`), and queued plaintext comes out
//! encrypted. JavaScript writes to a TLS socket by queueing plaintext in the shared send queue;
//! the loop thread encrypts and sends it, so no crypto runs on the JavaScript thread.

use std::sync::atomic::Ordering;

use super::io::{errno_of, FIN_SENT, SHUTDOWN_REQUESTED};
use super::stream::{Stream, Transport};
use super::KeyingMaterialRequest;
use crate::event_loop::batch::EventKind;
use crate::event_loop::lock;
use crate::event_loop::services::Services;
use crate::sys;
use crate::tls::Progress;

/// Plaintext handed to the session per call (rustls cuts it into records of 16 KiB and takes
/// it while less than `CIPHERTEXT_WINDOW` of them wait).
const TLS_ENCRYPT_CHUNK: usize = 64 * 1024;

impl Stream {
    /// Feeds ciphertext just read to the socket's TLS session: plaintext becomes `Data`, a
    /// completed handshake `Open`, the peer's close_notify `End`, a name no pattern knows a
    /// `ServerName` question. Returns whether the socket should go on reading.
    pub(super) fn tls_receive(&mut self, services: &mut Services, mut input: &[u8]) -> bool {
        let id = self.id;
        loop {
            if self.is_finished() {
                return false;
            }
            let Transport::Tls(session) = &mut self.transport else { return false };
            let events = &mut services.events;
            let progress = session
                .receive(&mut input, &mut |plaintext| events.push_data(id.index, id.generation, plaintext));
            match progress {
                Ok(Progress::Opened) => self.announce_open(services, None, None),
                Ok(Progress::NeedsName(name)) => {
                    // Whose context's `onServerName` answers: the listener's for a connection
                    // JavaScript does not know yet, else the socket's own (upgraded, adopted).
                    let asker = match self.listener {
                        Some(listener) if !self.upgrading => listener,
                        _ => id,
                    };
                    let mut payload = Vec::with_capacity(8 + name.len());
                    payload.extend_from_slice(&asker.index.to_le_bytes());
                    payload.extend_from_slice(&asker.generation.to_le_bytes());
                    payload.extend_from_slice(name.as_bytes());
                    services.events.push_with_payload(
                        EventKind::ServerName,
                        id.index,
                        id.generation,
                        &payload,
                    );
                    self.sync_interest(services);
                    return false;
                }
                Ok(Progress::Consumed { peer_closed }) => {
                    self.flush_tls(services);
                    if peer_closed {
                        if let Some(io) = self.io.clone().filter(|_| !self.peer_finished) {
                            self.peer_finished(services, &io);
                        }
                        return false;
                    }
                    return true;
                }
                Err(failure) => {
                    // The alert goes out first, if the kernel takes it.
                    self.flush_tls(services);
                    self.close_from_loop(services, failure.code());
                    return false;
                }
            }
        }
    }

    /// `exportKeyingMaterial` of an open TLS socket.
    pub(super) fn export_keying_material(&self, request: &KeyingMaterialRequest) -> Option<Vec<u8>> {
        let Transport::Tls(session) = &self.transport else { return None };
        session.export_keying_material(request.length, &request.label, request.context.as_deref())
    }

    /// JavaScript's `onServerName` ran: the handshake goes on with the names it has now.
    pub(super) fn server_name_chosen(&mut self, services: &mut Services) {
        let Transport::Tls(session) = &mut self.transport else { return };
        if !session.is_choosing_name() {
            return;
        }
        match session.name_chosen() {
            Ok(held_input) => {
                if self.tls_receive(services, &held_input) {
                    self.sync_interest(services);
                }
            }
            Err(failure) => {
                self.flush_tls(services);
                self.close_from_loop(services, failure.code());
            }
        }
    }

    /// Moves a TLS socket's output along: sends the ciphertext that waits, then encrypts queued
    /// plaintext (a window's worth: `CIPHERTEXT_WINDOW`) and sends it, queues close_notify once
    /// a shutdown's data is out, and so on until the kernel takes no more or all is out; then
    /// the FIN. Plaintext is encrypted only once earlier ciphertext is all out, so a slow
    /// peer's queue waits as plaintext. Reports `Writable` when a partial write or full `send`
    /// has drained. Ciphertext left waiting is what makes the socket watch writability, so
    /// plaintext never waits without it.
    pub(super) fn flush_tls(&mut self, services: &mut Services) {
        let (Some(io), Transport::Tls(session)) = (self.io.clone(), &mut self.transport) else { return };
        let mut socket = sys::SocketWriter(&io.socket);
        let mut failure = None;
        loop {
            match session.send_ciphertext(&mut socket) {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) => {
                    failure = Some(errno_of(&err));
                    break;
                }
            }
            if !session.is_open() || session.close_notify_queued() {
                break;
            }
            let mut queue = lock(&io.send_buffer);
            let mut encrypted = false;
            while !queue.is_empty() {
                let (front, _) = queue.as_slices();
                let taken = session.encrypt(&front[..front.len().min(TLS_ENCRYPT_CHUNK)]);
                if taken == 0 {
                    break;
                }
                queue.drain(..taken);
                encrypted = true;
            }
            io.buffered.store(queue.len(), Ordering::Release);
            let closing = queue.is_empty() && io.has(SHUTDOWN_REQUESTED);
            drop(queue);
            if closing {
                session.close_notify();
            } else if !encrypted {
                break;
            }
        }
        let output_done = session.pending_output().is_empty();
        io.tls_output.store(session.pending_output().len(), Ordering::Release);
        let fin_due = output_done && session.close_notify_queued() && !io.has(FIN_SENT);
        if self.wants_writable && io.buffered_amount() == 0 && self.announced {
            self.wants_writable = false;
            services.events.push(EventKind::Writable, self.id.index, self.id.generation, 0);
        }
        if let Some(errno) = failure {
            self.close_from_loop(services, errno);
            return;
        }
        if fin_due {
            io.set(FIN_SENT);
            if io.socket.shutdown(std::net::Shutdown::Write).is_err() || self.peer_finished {
                self.close_from_loop(services, 0);
                return;
            }
        }
        self.sync_interest(services);
    }
}
