//! The loop's iterations: each waits on the poller, applies the commands other threads
//! queued, routes what the poller reported to the driver of each handle kind (polls, sockets),
//! fires timers and timeouts, and publishes the iteration's events. The drivers own their
//! handles' state; the loop lends them its [`Services`]. A new handle kind is one driver, one
//! command arm and one routing line here. The loop thread runs them, unless it handed the
//! driving to the JavaScript thread (`handover.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::EventKind;
use super::handover::{BeforeSleep, Driver, HEAVY_ITERATION_BYTES};
use super::polls::Polls;
use super::services::Services;
use super::timers::Timers;
use super::{lock, poller, Command, Doorbell, Shared};
use crate::net::Net;
use crate::sys;
use crate::udp::Udp;

/// Everything only the thread driving the loop touches.
pub(super) struct LoopThread {
    doorbell: Doorbell,
    services: Services,
    timers: Timers,
    polls: Polls,
    net: Net,
    udp: Udp,
    poller_events: poller::Events,
    /// What the poller reported this iteration, as (key, readable, writable): a copy, so the
    /// drivers may borrow the loop's services mutably (reused, never reallocated per iteration).
    ready: Vec<(usize, bool, bool)>,
    commands: Vec<Command>,
}

impl LoopThread {
    pub(super) fn new(shared: Arc<Shared>, doorbell: Doorbell) -> LoopThread {
        LoopThread {
            doorbell,
            services: Services::new(shared),
            timers: Timers::default(),
            polls: Polls::default(),
            net: Net::default(),
            udp: Udp::default(),
            poller_events: poller::Events::new(),
            ready: Vec::new(),
            commands: Vec::new(),
        }
    }

    fn shared(&self) -> &Shared {
        &self.services.shared
    }

    /// One iteration: waits on the poller up to `timeout`, handles what happened and publishes
    /// the events, ringing the doorbell if `ring` (the JavaScript thread, driving, dispatches
    /// them itself instead).
    pub(super) fn iterate(&mut self, timeout: Option<Duration>, ring: bool) -> Iterated {
        if self.services.poller().wait(&mut self.poller_events, timeout).is_err() && ring {
            // Only a broken epoll fd fails here (EINTR is an empty iteration); back off
            // instead of spinning, and keep serving commands and timers.
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared().iteration.fetch_add(1, Ordering::Relaxed);
        self.apply_commands();
        self.collect_ready();
        self.polls.collect_acknowledged(self.services.delivered_seq());
        self.polls.report(&mut self.services);
        self.unthrottle();
        self.net.wake_listeners(&self.services, Instant::now());
        self.net.process_candidates(&mut self.services);
        self.fire_timers();
        if self.shared().wakeup_requested.swap(false, Ordering::SeqCst) {
            self.services.events.push(EventKind::Wakeup, 0, 0, 0);
        }
        let heavy = self.services.take_read_bulk() || self.services.events.bytes() >= HEAVY_ITERATION_BYTES;
        let published =
            if ring { self.services.publish(&mut *self.doorbell) } else { self.services.publish(&mut || {}) };
        Iterated { published, heavy }
    }

    fn unwatch_all(&mut self) {
        self.polls.unwatch_all(self.services.poller());
        self.net.unwatch_all(self.services.poller());
    }

    fn ring(&mut self) {
        (self.doorbell)();
    }

    /// How long the next wait may sleep. When progress depends on JavaScript acknowledging a
    /// delivery (polls to re-check, or no credit left), the loop asks to be woken for it.
    pub(super) fn prepare_wait(&mut self) -> Option<Duration> {
        let services = &self.services;
        let has_credit = services.has_credit();
        if self.polls.awaits_ack() || !has_credit {
            services.shared.delivery.await_delivery();
            let acked_poll = self.polls.oldest_report_acked(services.delivered_seq());
            if acked_poll || (!has_credit && services.has_credit()) {
                return Some(Duration::ZERO);
            }
        }
        if !has_credit {
            // Timers cannot fire without credit; the acknowledgement wakes the loop.
            return None;
        }
        if self.polls.has_candidates() || !services.throttled.is_empty() {
            return Some(Duration::ZERO);
        }
        [self.timers.next_deadline(), services.timeouts.next_deadline(), self.net.next_deadline()]
            .into_iter()
            .flatten()
            .min()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    fn apply_commands(&mut self) {
        std::mem::swap(&mut *lock(&self.services.shared.commands), &mut self.commands);
        let mut commands = std::mem::take(&mut self.commands);
        for command in commands.drain(..) {
            self.apply(command);
        }
        self.commands = commands;
    }

    fn apply(&mut self, command: Command) {
        let services = &mut self.services;
        match command {
            Command::ArmTimer { id, stamp, deadline, period } => {
                if services.slots().is_current(id) {
                    self.timers.arm(id, stamp, deadline, period);
                }
            }
            Command::DisarmTimer { id } => self.timers.disarm(id),
            Command::WatchPoll { id, stamp, fd, interest } => {
                if services.slots().is_current(id) {
                    self.polls.watch(id, stamp, fd, interest);
                }
            }
            Command::ChangePoll { id, interest } => self.polls.change(id, interest),
            Command::UnwatchPoll { id } => self.polls.unwatch(id),
            Command::Release { id } => {
                self.timers.release(id);
                self.polls.release(id, services.poller());
                self.net.release(services, id);
                self.udp.release(id);
                services.slots().release(id);
            }
            Command::Socket(command) => self.net.apply(services, command),
            Command::Udp(command) => self.udp.apply(services, command),
        }
    }

    /// Hands what the poller reported to the driver of each handle.
    fn collect_ready(&mut self) {
        self.ready.clear();
        self.ready.extend(self.poller_events.iter().map(|event| (event.key, event.readable, event.writable)));
        for &(key, readable, writable) in &self.ready {
            if !self.polls.ready(key) && !self.udp.ready(&mut self.services, key, readable, writable) {
                self.net.ready(&mut self.services, key, readable, writable);
            }
        }
    }

    /// Handles that waited for credit watch their input again once there is some.
    fn unthrottle(&mut self) {
        if self.services.throttled.is_empty() || !self.services.has_credit() {
            return;
        }
        for id in std::mem::take(&mut self.services.throttled) {
            self.net.unthrottle(&mut self.services, id);
            self.udp.unthrottle(&mut self.services, id);
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        self.net.fire_timeouts(&mut self.services, now);
        self.timers.fire(&mut self.services, now);
    }
}

/// What an iteration did.
pub(super) struct Iterated {
    /// It left events for JavaScript.
    pub published: bool,
    /// It moved bulk data: one handle read `BULK_READ_BYTES` or more, or its events came to
    /// `HEAVY_ITERATION_BYTES`.
    pub heavy: bool,
}

/// The loop thread's body: drives while the driving is its own, parks while it is not.
pub(super) fn run(driver: &Driver, shared: &Shared) {
    sys::prefer_batches();
    let spin = shared.config.spin;
    let mut spin_until = None;
    let mut light_iterations = 0;
    let mut last_bulk = None;
    let mut state = lock(&driver.state);
    while !shared.is_stopping() {
        if !driver.thread_drives() {
            state = driver.park(shared, state);
            // Handed back (bulk data came, TLS came into use, or libuv could not watch): wait
            // as after a heavy iteration.
            light_iterations = 0;
            last_bulk = Some(Instant::now());
            continue;
        }
        let Some(loop_state) = state.as_mut() else { break };
        let mut timeout = loop_state.prepare_wait();
        if spin_until.is_some_and(|until| Instant::now() < until) {
            // Let the JavaScript thread run if it shares the core, then look again.
            std::thread::yield_now();
            timeout = Some(Duration::ZERO);
        }
        if timeout != Some(Duration::ZERO) {
            match driver.before_sleep(shared, light_iterations, last_bulk) {
                BeforeSleep::Offered => {
                    // JavaScript takes the driving once it finds nothing more to dispatch.
                    loop_state.ring();
                    continue;
                }
                BeforeSleep::Hold(left) => timeout = Some(timeout.map_or(left, |timeout| timeout.min(left))),
                BeforeSleep::Sleep => {}
            }
        }
        let iterated = loop_state.iterate(timeout, true);
        if iterated.heavy {
            light_iterations = 0;
            last_bulk = Some(Instant::now());
        } else {
            light_iterations = light_iterations.saturating_add(1);
        }
        if iterated.published && !spin.is_zero() {
            spin_until = Some(Instant::now() + spin);
        }
    }
    if let Some(mut loop_state) = state.take() {
        loop_state.unwatch_all();
    }
}
