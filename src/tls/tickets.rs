//! The session tickets a TLS server issues (RFC 8446 §4.6.1, RFC 5077): the state a client
//! presents to resume, sealed under a key only servers hold. Without `ticketKeys`, each context
//! has a random key of its own that rustls rotates; with it, every context, worker or process
//! given the same 48 bytes seals and opens the same tickets, so a client resumes wherever a
//! balancer sends it. Replacing the keys (`setTls({ ticketKeys })`) keeps the previous ones for
//! opening, so tickets issued just before a rotation still resume.

use std::sync::{Arc, PoisonError, RwLock};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use tokio_rustls::rustls::crypto::ring::Ticketer;
use tokio_rustls::rustls::server::ProducesTickets;

use super::config::ConfigError;

/// `ticketKeys` is this long, as Node's: a 16-byte key name, then a 32-byte AES-256-GCM key.
pub const TICKET_KEYS_BYTES: usize = 48;
const KEY_NAME_BYTES: usize = 16;
/// How long a client may hold a ticket sealed under shared keys: the keys are the operator's
/// to rotate, and the hint tells clients not to keep tickets longer than a rotation period.
const SHARED_TICKET_LIFETIME_SECONDS: u32 = 12 * 3600;

/// The ticket keys of a context: the current ones seal and open, the previous ones only open.
#[derive(Debug)]
pub struct Tickets {
    keys: RwLock<Keys>,
}

#[derive(Debug)]
struct Keys {
    current: Arc<dyn ProducesTickets>,
    previous: Option<Arc<dyn ProducesTickets>>,
}

impl Tickets {
    /// Tickets under `ticket_keys`, or under a random key rustls rotates every few hours.
    pub fn new(ticket_keys: Option<&[u8]>) -> Result<Tickets, ConfigError> {
        let current: Arc<dyn ProducesTickets> = match ticket_keys {
            Some(bytes) => Arc::new(Tickets::parse_key(bytes)?),
            None => Ticketer::new().map_err(|err| ConfigError {
                code: "ERR_TLS_INTERNAL",
                message: format!("no ticket key: {err}"),
            })?,
        };
        Ok(Tickets { keys: RwLock::new(Keys { current, previous: None }) })
    }

    /// Checks `ticketKeys` and makes its key.
    pub fn parse_key(bytes: &[u8]) -> Result<SharedKey, ConfigError> {
        if bytes.len() != TICKET_KEYS_BYTES {
            return Err(ConfigError {
                code: "ERR_INVALID_ARG_VALUE",
                message: format!(
                    "tls.ticketKeys must be {TICKET_KEYS_BYTES} bytes long, not {}",
                    bytes.len()
                ),
            });
        }
        let (name, key) = bytes.split_at(KEY_NAME_BYTES);
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| ConfigError {
            code: "ERR_TLS_INTERNAL",
            message: "tls.ticketKeys: AES-256-GCM refused the key".to_owned(),
        })?;
        let mut key_name = [0; KEY_NAME_BYTES];
        key_name.copy_from_slice(name);
        Ok(SharedKey { name: key_name, key: LessSafeKey::new(key), random: SystemRandom::new() })
    }

    /// New tickets are sealed under `key`; the current key keeps opening the ones it sealed.
    pub fn rotate(&self, key: SharedKey) {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::replace(&mut keys.current, Arc::new(key));
        keys.previous = Some(previous);
    }

    fn keys(&self) -> (Arc<dyn ProducesTickets>, Option<Arc<dyn ProducesTickets>>) {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        (Arc::clone(&keys.current), keys.previous.clone())
    }
}

impl ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.keys().0.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.keys().0.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (current, previous) = self.keys();
        current.decrypt(cipher).or_else(|| previous?.decrypt(cipher))
    }
}

/// A ticket key given as `ticketKeys`. A ticket is its key name, a random nonce, and the
/// session state sealed with AES-256-GCM (the key name authenticated with it).
pub struct SharedKey {
    name: [u8; KEY_NAME_BYTES],
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKey")
    }
}

impl ProducesTickets for SharedKey {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        SHARED_TICKET_LIFETIME_SECONDS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        let aad = Aad::from(self.name);
        self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad, &mut sealed).ok()?;
        let mut ticket = Vec::with_capacity(KEY_NAME_BYTES + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&self.name);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let (name, rest) = ticket.split_at_checked(KEY_NAME_BYTES)?;
        if name != self.name {
            return None;
        }
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = sealed.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(self.name), &mut opened).ok()?;
        Some(plain.to_vec())
    }
}
