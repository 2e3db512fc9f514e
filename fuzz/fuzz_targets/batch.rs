//! The event record format: arbitrary sequences of pushes onto a batch (timers, opens with
//! payloads, data that joins the socket's record, data received from a real socket pair through
//! `sys::recv_words`, clears) must read back, with the reference reader, as exactly the records
//! a model of the joining rules predicts.
#![no_main]

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use libfuzzer_sys::fuzz_target;
use usockets_rs::event_loop::records::{read_records, Record};
use usockets_rs::event_loop::{Batch, EventKind};
use usockets_rs::sys::{self, Socket};

/// What the batch should hold, and whether its last record is a `Data` record that a push for
/// the same socket joins.
#[derive(Default)]
struct Model {
    records: Vec<Record>,
    joinable: bool,
}

impl Model {
    fn push(&mut self, kind: EventKind, index: u32, stamp: u32, arg: u32, payload: &[u8]) {
        self.records.push(Record { kind: kind as u32, index, stamp, arg, payload: payload.to_vec() });
        self.joinable = kind == EventKind::Data;
    }

    /// The open `Data` record of the socket, if a push of `more` bytes joins it.
    fn open_data(&mut self, index: u32, stamp: u32) -> Option<&mut Record> {
        let last = self.records.last_mut().filter(|_| self.joinable)?;
        (last.kind == EventKind::Data as u32 && last.index == index && last.stamp == stamp).then_some(last)
    }

    fn data(&mut self, index: u32, stamp: u32, bytes: &[u8], whole_words_only: bool) {
        match self.open_data(index, stamp) {
            Some(record) if !whole_words_only || record.payload.len() % 4 == 0 => {
                record.payload.extend_from_slice(bytes);
                record.arg = record.payload.len() as u32;
            }
            _ => self.push(EventKind::Data, index, stamp, bytes.len() as u32, bytes),
        }
    }
}

const PLAIN_KINDS: [EventKind; 9] = [
    EventKind::Timer,
    EventKind::Poll,
    EventKind::Wakeup,
    EventKind::Writable,
    EventKind::End,
    EventKind::Timeout,
    EventKind::LongTimeout,
    EventKind::Close,
    EventKind::ConnectError,
];

fuzz_target!(|data: &[u8]| {
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    ours.set_nonblocking(true).expect("non-blocking");
    let (socket, mut peer) = (Socket::from(OwnedFd::from(ours)), theirs);
    let mut batch = Batch::default();
    let mut model = Model::default();
    let mut input = data;
    while let [op, socket_index, rest @ ..] = input {
        // Two sockets and two stamps, so joins happen and are refused.
        let (index, stamp) = (u32::from(socket_index & 1), u32::from(socket_index >> 1 & 1));
        let length = usize::from(op >> 3).min(rest.len());
        let (bytes, after) = rest.split_at(length);
        input = after;
        match op & 7 {
            0 | 1 => {
                let kind = PLAIN_KINDS[usize::from(*socket_index) % PLAIN_KINDS.len()];
                let arg = u32::from(*op) << 8 | u32::from(*socket_index);
                batch.push(kind, index, stamp, arg);
                model.push(kind, index, stamp, arg, &[]);
            }
            2 if op & 16 != 0 => {
                // A datagram: the address is the first few bytes, as text.
                let split = usize::from(*socket_index).min(bytes.len());
                let (address, datagram) = bytes.split_at(split);
                let address: String = address.iter().map(|&byte| char::from(b'0' + byte % 10)).collect();
                let port = u16::from(*op) << 8 | u16::from(*socket_index);
                batch.push_datagram(index, stamp, port, &address, datagram);
                let mut payload = u32::from(port).to_le_bytes().to_vec();
                payload.extend_from_slice(&(address.len() as u32).to_le_bytes());
                payload.extend_from_slice(address.as_bytes());
                payload.extend_from_slice(datagram);
                model.push(EventKind::Datagram, index, stamp, payload.len() as u32, &payload);
            }
            2 => {
                let kind = if op & 8 == 0 { EventKind::Open } else { EventKind::ServerName };
                batch.push_with_payload(kind, index, stamp, bytes);
                model.push(kind, index, stamp, bytes.len() as u32, bytes);
            }
            3 | 4 => {
                batch.push_data(index, stamp, bytes);
                model.data(index, stamp, bytes, false);
            }
            5 | 6 => {
                // Straight from a socket into the batch, as plain TCP reads are.
                peer.write_all(bytes).expect("the pair takes a small write");
                let max = bytes.len().max(1) + usize::from(*socket_index);
                let received = batch
                    .push_received(index, stamp, max, |words| sys::recv_words(&socket, words, max))
                    .unwrap_or(0);
                assert_eq!(received, bytes.len(), "the socket held exactly what was written");
                if received > 0 {
                    model.data(index, stamp, bytes, true);
                } else if model.open_data(index, stamp).is_none_or(|r| r.payload.len() % 4 != 0) {
                    // A record begun for nothing is taken back, and with it the chance to join.
                    model.joinable = false;
                }
            }
            _ => {
                batch.clear();
                model = Model::default();
            }
        }
    }
    let read = read_records(batch.words()).expect("the batch reads back");
    assert_eq!(read, model.records);
});
