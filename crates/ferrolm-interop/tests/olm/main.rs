//! Olm interoperability: ferrolm against vodozemac 0.10 and libolm 3.2, in both directions.
//!
//! - `sessions`: establishing sessions (one-time and fallback keys), the pre-key phase,
//!   signatures, version-2 sessions with vodozemac.
//! - `conversation`: 1,000-message randomized conversations with reordering, drops and replays.
//! - `pickles`: libolm-format account and session pickles across implementations.
//! - `limits`: the 2,000-step message gap and the 5 receiver chains, at their edges.
//! - `dehydrated`: MSC3814 dehydrated-device pickles across ferrolm and vodozemac, both ways.
//! - `errors`: altered messages and wrong pickle keys, and the typed errors ferrolm reports.
//!
//! One test binary (faster to build than one per file). Randomized tests print their seed;
//! set `FERROLM_INTEROP_SEED` to replay one.

mod common;
mod conversation;
mod dehydrated;
mod errors;
mod limits;
mod pickles;
#[path = "../shared/rng.rs"]
mod rng;
mod sessions;
