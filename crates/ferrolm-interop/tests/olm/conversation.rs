//! Long randomized conversations between ferrolm and each peer: 1,000 messages with both
//! sides sending in random bursts, some messages held back and delivered late (out of
//! order, across chains), some dropped for good, and replays attempted on the way and at
//! the end. Every delivered message must decrypt to its plaintext; every replay must fail.
//!
//! The seed is printed (and can be fixed with `FERROLM_INTEROP_SEED`) so a failure replays.
//!
//! Late delivery stays within what all three implementations promise: a model of the
//! receiver tracks libolm's skipped-key list (40 keys per session, newest first, the oldest
//! evicted) and the 5 receiver chains every implementation keeps. Before a delivery would push
//! a held-back message's key (or chain) out of that model, the held-back message is
//! delivered first. libolm's per-session limit is stricter than ferrolm's and vodozemac's
//! 40 keys per chain, so the model is valid for all three.

use std::collections::{HashSet, VecDeque};

use crate::common::*;

const MESSAGES: usize = 1000;
const MODEL_CHAINS: usize = 5;
const MODEL_SKIPPED_KEYS: usize = 40;

type ChainId = [u8; 32];

/// What the receiver can still decrypt, as libolm would (the strictest of the three).
#[derive(Clone, Default)]
struct ReceiverModel {
    /// Receiver chains, newest first: ratchet key and next chain index.
    chains: VecDeque<(ChainId, u64)>,
    /// Skipped message keys, newest first.
    skipped: VecDeque<(ChainId, u64)>,
    evicted: HashSet<ChainId>,
    most_skipped: usize,
}

impl ReceiverModel {
    fn deliverable(&self, chain: ChainId, index: u64) -> bool {
        match self.chains.iter().find(|c| c.0 == chain) {
            Some(&(_, next)) => index >= next || self.skipped.contains(&(chain, index)),
            None => !self.evicted.contains(&chain),
        }
    }

    fn apply(&mut self, chain: ChainId, index: u64) {
        assert!(self.deliverable(chain, index), "harness error: delivering an undeliverable message");
        if !self.chains.iter().any(|c| c.0 == chain) {
            self.chains.push_front((chain, 0));
            if self.chains.len() > MODEL_CHAINS {
                let (old, _) = self.chains.pop_back().unwrap();
                self.evicted.insert(old);
            }
        }
        let entry = self.chains.iter_mut().find(|c| c.0 == chain).unwrap();
        if index < entry.1 {
            let at = self.skipped.iter().position(|k| *k == (chain, index)).unwrap();
            self.skipped.remove(at);
        } else {
            for skipped in entry.1..index {
                self.skipped.push_front((chain, skipped));
            }
            self.most_skipped = self.most_skipped.max(self.skipped.len());
            self.skipped.truncate(MODEL_SKIPPED_KEYS);
            entry.1 = index + 1;
        }
    }
}

struct InFlight {
    wire: Wire,
    plaintext: Vec<u8>,
    chain: ChainId,
    index: u64,
    release_at: usize,
    number: usize,
}

/// Messages from one side to the other.
#[derive(Default)]
struct Link {
    held: Vec<InFlight>,
    model: ReceiverModel,
    delivered: Vec<Wire>,
    late: usize,
    dropped: usize,
    rescued: usize,
    replays: usize,
    chains: HashSet<ChainId>,
}

struct Conversation {
    context: String,
    rng: TestRng,
    /// `sides[0]` is ferrolm, `sides[1]` the peer; link `d` carries messages from side `d`.
    sides: [Box<dyn PeerSession>; 2],
    links: [Link; 2],
}

impl Conversation {
    fn deliver(&mut self, from: usize, message: InFlight) {
        // Deliver first any held-back message this delivery would make undecryptable.
        loop {
            let link = &self.links[from];
            let mut after = link.model.clone();
            after.apply(message.chain, message.index);
            let Some(at) = link.held.iter().position(|h| !after.deliverable(h.chain, h.index)) else { break };
            let rescued = self.links[from].held.remove(at);
            self.links[from].rescued += 1;
            self.deliver(from, rescued);
        }

        let receiver = &mut self.sides[1 - from];
        let decrypted = receiver.decrypt(&message.wire).unwrap_or_else(|error| {
            panic!(
                "{}: message #{} ({:?} → {:?}, chain index {}) did not decrypt: {error}",
                self.context,
                message.number,
                self.sides[from].implementation(),
                self.sides[1 - from].implementation(),
                message.index
            )
        });
        assert!(
            decrypted == message.plaintext,
            "{}: message #{} decrypted to the wrong plaintext",
            self.context,
            message.number
        );
        let link = &mut self.links[from];
        link.model.apply(message.chain, message.index);
        link.delivered.push(message.wire.clone());
        assert!(
            link.held.iter().all(|h| link.model.deliverable(h.chain, h.index)),
            "harness error: a held-back message became undeliverable"
        );

        if self.rng.percent(10) {
            self.replay(from, &message.wire, true);
        }
    }

    /// A message delivered before must not decrypt again. Right after its delivery ferrolm
    /// must say exactly why: its key is gone.
    fn replay(&mut self, from: usize, wire: &Wire, immediately: bool) {
        let receiver = &mut self.sides[1 - from];
        let implementation = receiver.implementation();
        match receiver.decrypt(wire) {
            Ok(_) => panic!("{}: a replayed message decrypted again at {implementation:?}", self.context),
            Err(error) => {
                if immediately && implementation == Impl::Ferrolm {
                    assert!(error.starts_with("MissingMessageKey"), "{}: replay refused with {error}", self.context);
                }
            }
        }
        self.links[from].replays += 1;
    }

    fn release_due(&mut self, step: usize) {
        for from in 0..2 {
            loop {
                let due: Vec<usize> =
                    self.links[from].held.iter().filter(|h| h.release_at <= step).map(|h| h.number).collect();
                if due.is_empty() {
                    break;
                }
                let number = due[self.rng.below(due.len())];
                // A rescue may already have delivered it.
                if let Some(at) = self.links[from].held.iter().position(|h| h.number == number) {
                    let message = self.links[from].held.remove(at);
                    self.links[from].late += 1;
                    self.deliver(from, message);
                }
            }
        }
    }

    fn release_all(&mut self) {
        for from in 0..2 {
            while !self.links[from].held.is_empty() {
                let at = self.rng.below(self.links[from].held.len());
                let message = self.links[from].held.remove(at);
                self.links[from].late += 1;
                self.deliver(from, message);
            }
        }
    }
}

fn converse(test: &str, peer: Impl, ferrolm_initiates: bool, version: Version) {
    let seed = seed(test);
    let mut rng = TestRng::new(seed);
    let key = if rng.percent(50) { KeyKind::OneTime } else { KeyKind::Fallback };
    let context = format!("{test} (seed {seed}, {key:?} key)");
    let (initiator, receiver) = if ferrolm_initiates { (Impl::Ferrolm, peer) } else { (peer, Impl::Ferrolm) };
    let pair = establish(initiator, receiver, version, key);

    let sides = if ferrolm_initiates { [pair.initiator, pair.receiver] } else { [pair.receiver, pair.initiator] };
    let mut conversation = Conversation { context, rng, sides, links: [Link::default(), Link::default()] };
    // The first (pre-key) message, sent and decrypted by `establish`, opened the initiator's
    // first chain at the receiver.
    let initiator_side = if ferrolm_initiates { 0 } else { 1 };
    let probe = conversation.sides[initiator_side].fork().encrypt(b"probe");
    let (first_chain, _) = probe.chain_position();
    conversation.links[initiator_side].model.apply(first_chain, 0);

    let mut sender = initiator_side;
    let mut switch_percent = 40;
    for number in 1..MESSAGES {
        // Phases of short chains (frequent turns) and long ones (bigger gaps inside a chain).
        if number % 100 == 0 {
            switch_percent = [3, 10, 25, 50][conversation.rng.below(4)];
        }
        conversation.release_due(number);
        if conversation.rng.percent(switch_percent) {
            sender = 1 - sender;
        }
        let len = conversation.rng.below(200);
        let mut plaintext = format!("{sender} #{number} ").into_bytes();
        plaintext.extend(conversation.rng.bytes(len));
        let received_before = conversation.sides[sender].has_received_message();
        let wire = conversation.sides[sender].encrypt(&plaintext);
        assert_eq!(
            wire.is_pre_key(),
            !received_before,
            "{}: pre-key messages until the first reply",
            conversation.context
        );
        let (chain, index) = wire.chain_position();
        conversation.links[sender].chains.insert(chain);
        let message = InFlight { wire, plaintext, chain, index, release_at: 0, number };
        match conversation.rng.below(100) {
            0..8 => conversation.links[sender].dropped += 1,
            8..20 => {
                let release_at = number + 1 + conversation.rng.below(40);
                conversation.links[sender].held.push(InFlight { release_at, ..message });
            }
            _ => conversation.deliver(sender, message),
        }
    }
    conversation.release_all();

    // Every message delivered so far is refused a second time, on both sides.
    for from in 0..2 {
        for wire in conversation.links[from].delivered.clone() {
            conversation.replay(from, &wire, false);
        }
    }
    // And the sessions still work both ways.
    let [ferrolm, other] = &mut conversation.sides;
    ping_pong(ferrolm.as_mut(), other.as_mut(), 3);

    for (from, link) in conversation.links.iter().enumerate() {
        eprintln!(
            "{}: side {from} sent on {} chains; {} delivered ({} late, {} of them rescued early), {} dropped, {} replays refused, \
             receiver's skipped keys peaked at {}",
            conversation.context,
            link.chains.len(),
            link.delivered.len(),
            link.late,
            link.rescued,
            link.dropped,
            link.replays,
            link.model.most_skipped
        );
        assert!(
            link.late > 0 && link.dropped > 0 && link.chains.len() > 10,
            "{}: the run exercised little",
            conversation.context
        );
    }
}

#[test]
fn random_conversation_ferrolm_initiates_with_vodozemac() {
    converse("ferrolm → vodozemac", Impl::Vodozemac, true, Version::V1);
}

#[test]
fn random_conversation_vodozemac_initiates_with_ferrolm() {
    converse("vodozemac → ferrolm", Impl::Vodozemac, false, Version::V1);
}

#[test]
fn random_conversation_ferrolm_initiates_with_libolm() {
    converse("ferrolm → libolm", Impl::Libolm, true, Version::V1);
}

#[test]
fn random_conversation_libolm_initiates_with_ferrolm() {
    converse("libolm → ferrolm", Impl::Libolm, false, Version::V1);
}

#[test]
fn random_version_2_conversation_ferrolm_initiates_with_vodozemac() {
    converse("ferrolm → vodozemac, version 2", Impl::Vodozemac, true, Version::V2);
}

#[test]
fn random_version_2_conversation_vodozemac_initiates_with_ferrolm() {
    converse("vodozemac → ferrolm, version 2", Impl::Vodozemac, false, Version::V2);
}
