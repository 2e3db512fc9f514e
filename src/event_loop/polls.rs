//! The poll driver (`us_poll`): any pollable descriptor the user owns, watched edge-triggered.
//! A report is made only after a fresh readiness check (`poll(2)`), and a poll is not reported
//! again until JavaScript has dispatched its previous report, so every report is true when made
//! and a busy JavaScript thread never sees a pile of stale ones.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use super::batch::EventKind;
use super::poller::Poller;
use super::services::Services;
use super::slots::{Slab, SlotId};
use super::{READABLE, WRITABLE};
use crate::sys;

#[derive(Debug)]
struct PollState {
    stamp: u32,
    fd: RawFd,
    interest: u32,
    watching: bool,
    /// Reported and not yet acknowledged: not re-checked or reported again until then.
    awaiting_ack: bool,
    /// Queued for a readiness re-check.
    candidate: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Polls {
    polls: Slab<PollState>,
    /// Reported polls in report order: id, the iteration that reported them, their stamp then.
    reported: VecDeque<(SlotId, u64, u32)>,
    /// Polls whose readiness must be re-checked before they can be reported.
    candidates: Vec<SlotId>,
    pollfds: Vec<libc::pollfd>,
}

impl Polls {
    /// The fd was registered with the poller by the JavaScript thread.
    pub fn watch(&mut self, id: SlotId, stamp: u32, fd: RawFd, interest: u32) {
        let poll = PollState { stamp, fd, interest, watching: true, awaiting_ack: false, candidate: false };
        self.polls.insert(id, poll);
    }

    pub fn change(&mut self, id: SlotId, interest: u32) {
        if let Some(poll) = self.polls.get_mut(id) {
            poll.interest = interest;
            if poll.watching && !poll.awaiting_ack && !poll.candidate {
                poll.candidate = true;
                self.candidates.push(id);
            }
        }
    }

    /// The fd was deregistered by the JavaScript thread.
    pub fn unwatch(&mut self, id: SlotId) {
        if let Some(poll) = self.polls.get_mut(id) {
            poll.watching = false;
            poll.awaiting_ack = false;
        }
    }

    /// Forgets the poll (its slot is being freed), leaving its fd unregistered.
    pub fn release(&mut self, id: SlotId, poller: &Poller) {
        if let Some(poll) = self.polls.remove(id) {
            Self::unregister(&poll, poller);
        }
    }

    /// The poller reported the slot `index`. Returns whether it is a poll (of any state).
    pub fn ready(&mut self, index: usize) -> bool {
        let Some((id, poll)) = self.polls.get_by_index_mut(index) else { return false };
        if poll.watching && !poll.awaiting_ack && !poll.candidate {
            poll.candidate = true;
            self.candidates.push(id);
        }
        true
    }

    /// Whether a report waits for JavaScript's acknowledgement (the loop must be woken for it).
    pub fn awaits_ack(&self) -> bool {
        !self.reported.is_empty()
    }

    /// Whether the oldest report has been dispatched (`delivered` is the last dispatched seq).
    pub fn oldest_report_acked(&self, delivered: u64) -> bool {
        self.reported.front().is_some_and(|&(_, seq, _)| seq <= delivered)
    }

    pub fn has_candidates(&self) -> bool {
        !self.candidates.is_empty()
    }

    /// Polls whose report JavaScript has dispatched: re-checked now, reported again if still ready.
    pub fn collect_acknowledged(&mut self, delivered: u64) {
        while let Some(&(id, seq, stamp)) = self.reported.front() {
            if seq > delivered {
                break;
            }
            self.reported.pop_front();
            let Some(poll) = self.polls.get_mut(id) else { continue };
            // A poll stopped and started again since this report awaits its new one instead.
            if poll.stamp != stamp {
                continue;
            }
            if poll.awaiting_ack && poll.watching && !poll.candidate {
                poll.candidate = true;
                self.candidates.push(id);
            }
            poll.awaiting_ack = false;
        }
    }

    /// Re-checks the candidates' readiness in one `poll(2)` and reports the ready ones. Edge
    /// notifications can be stale (the fd was drained while its callback ran); the re-check
    /// makes every report true at the time it is made.
    pub fn report(&mut self, services: &mut Services) {
        if self.candidates.is_empty() || !services.has_credit() {
            return;
        }
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.retain(|&id| self.polls.get(id).is_some_and(|p| p.watching && p.candidate));
        self.pollfds.clear();
        for &id in &candidates {
            if let Some(poll) = self.polls.get(id) {
                let mut events = 0;
                if poll.interest & READABLE != 0 {
                    events |= libc::POLLIN;
                }
                if poll.interest & WRITABLE != 0 {
                    events |= libc::POLLOUT;
                }
                self.pollfds.push(libc::pollfd { fd: poll.fd, events, revents: 0 });
            }
        }
        if sys::poll_now(&mut self.pollfds).is_err() {
            // Cannot happen with a valid array; retry on the next iteration rather than lose them.
            self.candidates = candidates;
            return;
        }
        let seq = services.current_seq();
        for (i, &id) in candidates.iter().enumerate() {
            let revents = self.pollfds[i].revents;
            let has_credit = services.has_credit();
            let Some(poll) = self.polls.get_mut(id) else {
                continue;
            };
            let mut ready = 0;
            if revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                // Errors and hang-ups are reported as whatever the poll waits for, as in uSockets:
                // the callback's next read or write sees the error.
                ready = poll.interest;
            }
            if revents & libc::POLLIN != 0 {
                ready |= READABLE;
            }
            if revents & libc::POLLOUT != 0 {
                ready |= WRITABLE;
            }
            ready &= poll.interest;
            if ready == 0 {
                // Not ready after all: the next edge brings it back.
                poll.candidate = false;
            } else if has_credit {
                poll.candidate = false;
                poll.awaiting_ack = true;
                services.events.push(EventKind::Poll, id.index, poll.stamp, ready);
                self.reported.push_back((id, seq, poll.stamp));
            } else {
                // Out of credit: keep it for when JavaScript catches up.
                self.candidates.push(id);
            }
        }
    }

    /// Leaves no user fd registered once the loop is gone.
    pub fn unwatch_all(&mut self, poller: &Poller) {
        for poll in self.polls.drain() {
            Self::unregister(&poll, poller);
        }
    }

    fn unregister(poll: &PollState, poller: &Poller) {
        if poll.watching {
            let _ = poller.unwatch_user_fd(poll.fd);
        }
    }
}
