//! The machine's two inputs from the world besides the network: a clock and a random number
//! generator. Both are injected, so the same inputs replay the same outputs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferrolm::CryptoRngCore;

/// Where the machine reads the time: milliseconds since the Unix epoch.
pub trait Clock: Send {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to; clones share the time. For tests and simulations.
///
/// ```
/// use ferrolm_machine::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// let handle = clock.clone();
/// handle.advance_ms(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now_ms)))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `now_ms`.
    pub fn set_ms(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A cryptographically secure random number generator the machine may own.
pub trait MachineRng: CryptoRngCore + Send {}

impl<T: CryptoRngCore + Send> MachineRng for T {}

/// The clock and the random number generator a machine uses.
///
/// [`Env::system`] is what an application wants: the wall clock and the operating system's
/// generator. Tests and simulations inject a [`ManualClock`] and a seeded generator, which
/// makes every output of the machine (keys, request ids, ciphertexts) a function of its inputs.
///
/// ```
/// use ferrolm_machine::{Env, ManualClock};
/// let env = Env::system();
/// let clock = ManualClock::new(0);
/// // Any `CryptoRng + RngCore + Send` will do; a seeded one makes runs reproducible.
/// let env = Env::new(clock.clone(), rand_core::OsRng);
/// ```
pub struct Env {
    clock: Box<dyn Clock>,
    rng: Box<dyn MachineRng>,
}

impl Env {
    /// An environment from a clock and a generator.
    pub fn new(clock: impl Clock + 'static, rng: impl MachineRng + 'static) -> Self {
        Self { clock: Box::new(clock), rng: Box::new(rng) }
    }

    /// The wall clock and the operating system's generator.
    pub fn system() -> Self {
        Self::new(SystemClock, rand_core::OsRng)
    }

    /// The current time in milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The generator.
    pub(crate) fn rng(&mut self) -> &mut dyn MachineRng {
        self.rng.as_mut()
    }

    /// `n` random bytes as lowercase hex (request and transaction ids).
    pub(crate) fn random_hex(&mut self, n: usize) -> String {
        let mut bytes = vec![0u8; n];
        self.rng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl core::fmt::Debug for Env {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Env").field("now_ms", &self.now_ms()).finish_non_exhaustive()
    }
}
