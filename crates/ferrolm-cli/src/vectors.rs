//! `ferrolm vectors DIR`: replays the known-answer test vectors in DIR (libolm's outputs for
//! fixed randomness, the RFC vectors of the primitives, and Matrix formats libolm lacks) with
//! ferrolm, byte for byte.
//!
//! Every JSON file in DIR holds a document of schema `ferrolm-test-vectors/1` (described in
//! `test-vectors/README.md`). A vector is a list of steps over named objects (accounts,
//! sessions, group sessions…); each step is an operation with its inputs and libolm's outputs.
//! The replay runs each operation with ferrolm and compares every output. Randomness is handed
//! out by [`ReplayRng`] from the step's `random` field: ferrolm must consume exactly those
//! bytes, no more and no fewer. A field of a step that the replay neither used as an input nor
//! compared is itself a failure, so no expected value is ever skipped silently.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use ferrolm::key_export;
use ferrolm::megolm::{self, ExportedSessionKey, GroupSession, InboundGroupSession, MegolmMessage, SessionKey};
use ferrolm::olm::{self, Account, MessageType, OlmMessage, PreKeyMessage, Session, SessionCreationError};
use ferrolm::pickle::PickleError;
use ferrolm::pk::{PkDecryption, PkEncryption, PkError, PkMessage, PkSigning};
use ferrolm::sas::{EstablishedSas, Sas, SasMac};
use ferrolm::secret_storage::{KeyCheck, SecretStorageKey};
use ferrolm::types::{
    Curve25519PublicKey, Curve25519SecretKey, Ed25519Keypair, Ed25519PublicKey, Ed25519Signature, base64_decode,
};
use serde_json::{Map, Value};

/// The schema every vector file must declare.
pub(crate) const SCHEMA: &str = "ferrolm-test-vectors/1";

/// Fields of a step that are neither inputs nor expected outputs.
const FREE_FIELDS: [&str; 2] = ["op", "note"];

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let [dir] = args else {
        return Err("usage: ferrolm vectors DIR".to_owned());
    };
    let reports = replay_dir(Path::new(dir))?;
    let mut out = String::new();
    for report in &reports {
        report.print(&mut out);
    }
    let total: usize = reports.iter().map(|r| r.vectors).sum();
    let passed: usize = reports.iter().map(|r| r.passed).sum();
    let steps: usize = reports.iter().map(|r| r.steps).sum();
    out.push_str(&format!("total: {total} vectors ({steps} steps), {passed} passed, {} failed\n", total - passed));
    print!("{out}");
    if passed == total { Ok(()) } else { Err(format!("{} of {total} vectors failed", total - passed)) }
}

/// The outcome of one vector file.
#[derive(Debug, Default)]
pub(crate) struct FileReport {
    pub(crate) file: String,
    pub(crate) vectors: usize,
    pub(crate) passed: usize,
    pub(crate) steps: usize,
    /// (vector id, what went wrong)
    pub(crate) failures: Vec<(String, String)>,
}

impl FileReport {
    fn print(&self, out: &mut String) {
        out.push_str(&format!("{}: {} vectors, {} passed\n", self.file, self.vectors, self.passed));
        for (id, detail) in &self.failures {
            out.push_str(&format!("  FAIL {id}\n"));
            for line in detail.lines() {
                out.push_str(&format!("       {line}\n"));
            }
        }
    }
}

/// Replays every `*.json` file of `dir`, in name order.
pub(crate) fn replay_dir(dir: &Path) -> Result<Vec<FileReport>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no .json files in {}", dir.display()));
    }
    files.iter().map(|path| replay_file(path)).collect()
}

fn replay_file(path: &Path) -> Result<FileReport, String> {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let document: Value = serde_json::from_str(&text).map_err(|e| format!("{name}: invalid JSON: {e}"))?;
    let schema = document.get("schema").and_then(Value::as_str);
    if schema != Some(SCHEMA) {
        return Err(format!("{name}: schema {schema:?}, expected \"{SCHEMA}\""));
    }
    let vectors = document.get("vectors").and_then(Value::as_array).ok_or(format!("{name}: no \"vectors\" array"))?;
    let declared = document.get("vector_count").and_then(Value::as_u64);
    if declared != Some(vectors.len() as u64) {
        return Err(format!("{name}: vector_count {declared:?} but {} vectors", vectors.len()));
    }
    let mut report = FileReport { file: name, vectors: vectors.len(), ..FileReport::default() };
    for (n, vector) in vectors.iter().enumerate() {
        let id = vector.get("id").and_then(Value::as_str).map_or_else(|| format!("#{n}"), str::to_owned);
        report.steps += vector.get("steps").and_then(Value::as_array).map_or(0, Vec::len);
        match replay_vector(vector) {
            Ok(()) => report.passed += 1,
            Err(detail) => report.failures.push((id, detail)),
        }
    }
    Ok(report)
}

/// Replays one vector: every step, in order, over a fresh set of objects.
pub(crate) fn replay_vector(vector: &Value) -> Result<(), String> {
    let steps = vector.get("steps").and_then(Value::as_array).ok_or("the vector has no \"steps\" array")?;
    if steps.is_empty() {
        return Err("the vector has no steps".to_owned());
    }
    let mut state = State::default();
    for (n, step) in steps.iter().enumerate() {
        let fields = step.as_object().ok_or(format!("step {n} is not an object"))?;
        let op = fields.get("op").and_then(Value::as_str).unwrap_or("?");
        let step = Step { fields, used: RefCell::new(BTreeSet::new()) };
        state.apply(op, &step).and_then(|()| step.all_fields_used()).map_err(|e| format!("step {n} ({op}): {e}"))?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Randomness
// ------------------------------------------------------------------------------------------

/// A generator that hands out a vector's random bytes in order. Asking for more than it holds
/// is recorded (the missing bytes are zeros) and reported by [`ReplayRng::finish`], as is
/// leaving bytes unused.
pub(crate) struct ReplayRng {
    bytes: Vec<u8>,
    position: usize,
    requested: usize,
}

impl ReplayRng {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, position: 0, requested: 0 }
    }

    /// Checks that exactly all the bytes were consumed.
    pub(crate) fn finish(self) -> Result<(), String> {
        let supplied = self.bytes.len();
        if self.requested > supplied {
            Err(format!("ferrolm asked for {} random bytes, the vector supplies {supplied}", self.requested))
        } else if self.requested < supplied {
            Err(format!("ferrolm used {} random bytes, the vector supplies {supplied}", self.requested))
        } else {
            Ok(())
        }
    }
}

impl rand_core::RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.requested += dest.len();
        for byte in dest.iter_mut() {
            *byte = self.bytes.get(self.position).copied().unwrap_or(0);
            self.position += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for ReplayRng {}

// ------------------------------------------------------------------------------------------
// Steps: typed access to fields, each marked as used
// ------------------------------------------------------------------------------------------

struct Step<'a> {
    fields: &'a Map<String, Value>,
    used: RefCell<BTreeSet<String>>,
}

impl Step<'_> {
    fn get(&self, name: &str) -> Result<&Value, String> {
        self.used.borrow_mut().insert(name.to_owned());
        self.fields.get(name).ok_or(format!("missing field \"{name}\""))
    }

    fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    fn str(&self, name: &str) -> Result<&str, String> {
        self.get(name)?.as_str().ok_or(format!("field \"{name}\" is not a string"))
    }

    fn u64(&self, name: &str) -> Result<u64, String> {
        self.get(name)?.as_u64().ok_or(format!("field \"{name}\" is not an unsigned integer"))
    }

    fn u32(&self, name: &str) -> Result<u32, String> {
        u32::try_from(self.u64(name)?).map_err(|_| format!("field \"{name}\" does not fit in 32 bits"))
    }

    fn usize(&self, name: &str) -> Result<usize, String> {
        usize::try_from(self.u64(name)?).map_err(|_| format!("field \"{name}\" is too large"))
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        self.get(name)?.as_bool().ok_or(format!("field \"{name}\" is not a boolean"))
    }

    fn hex(&self, name: &str) -> Result<Vec<u8>, String> {
        hex_decode(self.str(name)?).map_err(|e| format!("field \"{name}\": {e}"))
    }

    fn hex_array<const N: usize>(&self, name: &str) -> Result<[u8; N], String> {
        let bytes = self.hex(name)?;
        <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| format!("field \"{name}\" is {} bytes, not {N}", bytes.len()))
    }

    fn rng(&self) -> Result<ReplayRng, String> {
        Ok(ReplayRng::new(self.hex("random")?))
    }

    /// A `{key id: key}` object as a map.
    fn key_map(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        let object = self.get(name)?.as_object().ok_or(format!("field \"{name}\" is not an object"))?;
        object
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or(format!("field \"{name}\" holds a non-string"))?.to_owned())))
            .collect()
    }

    /// The object named by field `name` (an account, a session…).
    fn name(&self, field: &str) -> Result<String, String> {
        self.str(field).map(str::to_owned)
    }

    fn all_fields_used(&self) -> Result<(), String> {
        let used = self.used.borrow();
        let unused: Vec<&str> =
            self.fields.keys().map(String::as_str).filter(|k| !FREE_FIELDS.contains(k) && !used.contains(*k)).collect();
        if unused.is_empty() { Ok(()) } else { Err(format!("fields not checked by the replay: {unused:?}")) }
    }
}

// ------------------------------------------------------------------------------------------
// Comparisons that explain themselves
// ------------------------------------------------------------------------------------------

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 {
        return Err("odd number of hex digits".to_owned());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("invalid hex at {i}"))
        })
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()))
}

/// Equal byte strings, or a report with both in hex and the first differing offset.
fn check_bytes(what: &str, expected: &[u8], got: &[u8]) -> Result<(), String> {
    if expected == got {
        return Ok(());
    }
    Err(format!(
        "{what} differs at byte {} (expected {} bytes, got {})\n  expected: {}\n  got:      {}",
        first_difference(expected, got),
        expected.len(),
        got.len(),
        hex_encode(expected),
        hex_encode(got)
    ))
}

/// Equal base64 strings; on a mismatch both are decoded and shown in hex.
fn check_b64(what: &str, expected: &str, got: &str) -> Result<(), String> {
    if expected == got {
        return Ok(());
    }
    match (base64_decode(expected), base64_decode(got)) {
        (Ok(e), Ok(g)) if e != g => {
            check_bytes(what, &e, &g).map_err(|detail| format!("{detail}\n  (base64: expected {expected}, got {got})"))
        }
        _ => Err(format!("{what}: expected {expected:?}, got {got:?}")),
    }
}

fn check_text(what: &str, expected: &str, got: &[u8]) -> Result<(), String> {
    check_bytes(what, expected.as_bytes(), got)
}

fn check_eq<T: PartialEq + core::fmt::Debug>(what: &str, expected: T, got: T) -> Result<(), String> {
    if expected == got { Ok(()) } else { Err(format!("{what}: expected {expected:?}, got {got:?}")) }
}

/// Equal libolm pickles; on a mismatch both are opened with the pickle key and their
/// plaintexts compared, which says which field differs.
fn check_pickle(expected: &str, got: &str, key: &[u8]) -> Result<(), String> {
    if expected == got {
        return Ok(());
    }
    match (libolm_pickle::open(expected, key), libolm_pickle::open(got, key)) {
        (Ok(e), Ok(g)) => check_bytes("the pickle's decrypted contents", &e, &g)
            .map_err(|detail| format!("{detail}\n  (pickles: expected {expected}, got {got})")),
        (e, g) => Err(format!(
            "pickle: expected {expected}, got {got} (opening them: expected {:?}, got {:?})",
            e.err(),
            g.err()
        )),
    }
}

/// libolm's pickle envelope, opened independently of ferrolm to explain pickle mismatches:
/// `HKDF-SHA-256(salt = empty, pickle key, "Pickle", 80)` = AES-256 key ‖ HMAC key ‖ IV;
/// AES-256-CBC ciphertext ‖ 8-byte truncated HMAC-SHA-256; unpadded base64.
mod libolm_pickle {
    use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
    use hmac::Mac;

    pub(super) fn open(pickle: &str, key: &[u8]) -> Result<Vec<u8>, &'static str> {
        let bytes = ferrolm::types::base64_decode(pickle).map_err(|_| "not base64")?;
        let split = bytes.len().checked_sub(8).ok_or("too short")?;
        let (ciphertext, mac) = bytes.split_at(split);
        let mut okm = [0u8; 80];
        hkdf::Hkdf::<sha2::Sha256>::new(None, key).expand(b"Pickle", &mut okm).map_err(|_| "HKDF")?;
        let (aes_key, rest) = okm.split_at(32);
        let (mac_key, iv) = rest.split_at(32);
        let mut hmac = hmac::Hmac::<sha2::Sha256>::new_from_slice(mac_key).map_err(|_| "HMAC key")?;
        hmac.update(ciphertext);
        if hmac.finalize().into_bytes().get(..8) != Some(mac) {
            return Err("MAC mismatch");
        }
        cbc::Decryptor::<aes::Aes256>::new_from_slices(aes_key, iv)
            .map_err(|_| "AES key")?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(|_| "padding")
    }
}

// ------------------------------------------------------------------------------------------
// libolm's error names for ferrolm's errors
// ------------------------------------------------------------------------------------------

fn olm_decryption_error(error: &olm::DecryptionError) -> String {
    match error {
        // libolm has no error of its own for a message whose key was already used (a replay)
        // or dropped: it finds no key that authenticates the message, and says BAD_MESSAGE_MAC.
        olm::DecryptionError::InvalidMac | olm::DecryptionError::MissingMessageKey(_) => "BAD_MESSAGE_MAC".to_owned(),
        olm::DecryptionError::VersionMismatch { .. } => "BAD_MESSAGE_VERSION".to_owned(),
        other => format!("{other:?}"),
    }
}

fn session_creation_error(error: &SessionCreationError) -> String {
    match error {
        SessionCreationError::Decryption(inner) => olm_decryption_error(inner),
        SessionCreationError::MissingOneTimeKey(_) => "BAD_MESSAGE_KEY_ID".to_owned(),
        other => format!("{other:?}"),
    }
}

fn megolm_decryption_error(error: &megolm::DecryptionError) -> String {
    match error {
        megolm::DecryptionError::InvalidSignature => "BAD_SIGNATURE".to_owned(),
        megolm::DecryptionError::InvalidMac => "BAD_MESSAGE_MAC".to_owned(),
        megolm::DecryptionError::UnknownMessageIndex { .. } => "UNKNOWN_MESSAGE_INDEX".to_owned(),
        megolm::DecryptionError::VersionMismatch { .. } => "BAD_MESSAGE_VERSION".to_owned(),
        other => format!("{other:?}"),
    }
}

fn pickle_error(error: &PickleError) -> String {
    match error {
        PickleError::Mac => "BAD_ACCOUNT_KEY".to_owned(),
        PickleError::Base64 => "INVALID_BASE64".to_owned(),
        PickleError::UnknownVersion(_) => "UNKNOWN_PICKLE_VERSION".to_owned(),
        PickleError::Corrupted(_) | PickleError::TooShort => "CORRUPTED_PICKLE".to_owned(),
        other => format!("{other:?}"),
    }
}

fn pk_error(error: &PkError) -> String {
    match error {
        PkError::InvalidMac => "BAD_MESSAGE_MAC".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The outcome of a fallible operation against a step that expects either an `error` (by
/// libolm's name) or success.
fn expect_outcome<T, E>(
    step: &Step<'_>,
    result: Result<T, E>,
    name: impl Fn(&E) -> String,
) -> Result<Option<T>, String> {
    if step.has("error") {
        let expected = step.str("error")?;
        match result {
            Ok(_) => Err(format!("expected the error {expected}, but ferrolm succeeded")),
            Err(error) => check_eq("error", expected, name(&error).as_str()).map(|()| None),
        }
    } else {
        result.map(Some).map_err(|error| format!("ferrolm failed with {} where libolm succeeded", name(&error)))
    }
}

// ------------------------------------------------------------------------------------------
// The objects of a vector, and its operations
// ------------------------------------------------------------------------------------------

enum SasState {
    Created(Sas),
    Established(EstablishedSas),
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, Account>,
    sessions: HashMap<String, Session>,
    groups: HashMap<String, GroupSession>,
    inbounds: HashMap<String, InboundGroupSession>,
    sas: HashMap<String, SasState>,
    pks: HashMap<String, PkDecryption>,
    signings: HashMap<String, PkSigning>,
}

fn lookup<'m, T>(map: &'m mut HashMap<String, T>, kind: &str, name: &str) -> Result<&'m mut T, String> {
    map.get_mut(name).ok_or(format!("no {kind} named \"{name}\" (an earlier step must create it)"))
}

fn curve_key(step: &Step<'_>, field: &str) -> Result<Curve25519PublicKey, String> {
    Curve25519PublicKey::from_base64(step.str(field)?).map_err(|e| format!("field \"{field}\": {e}"))
}

fn message_type(step: &Step<'_>) -> Result<MessageType, String> {
    MessageType::try_from(step.u64("message_type")?).map_err(|e| e.to_string())
}

fn key_ids(keys: BTreeMap<ferrolm::types::KeyId, Curve25519PublicKey>) -> BTreeMap<String, String> {
    keys.into_iter().map(|(id, key)| (id.to_base64(), key.to_base64())).collect()
}

fn check_identity_keys(step: &Step<'_>, account: &Account) -> Result<(), String> {
    let expected = step.get("identity_keys")?;
    let field = |name: &str| expected.get(name).and_then(Value::as_str).ok_or(format!("identity_keys has no {name}"));
    check_b64("curve25519 identity key", field("curve25519")?, &account.curve25519_key().to_base64())?;
    check_b64("ed25519 identity key", field("ed25519")?, &account.ed25519_key().to_base64())
}

impl State {
    fn apply(&mut self, op: &str, step: &Step<'_>) -> Result<(), String> {
        match op.split_once('.').map_or(op, |(kind, _)| kind) {
            "account" => self.account(op, step),
            "session" => self.session(op, step),
            "group" => self.group(op, step),
            "inbound" => self.inbound(op, step),
            "sas" => self.sas(op, step),
            "pk_decryption" | "pk_encryption" | "pk_signing" => self.pk(op, step),
            "key_export" | "secret_storage" => matrix(op, step),
            _ => primitive(op, step),
        }
    }

    fn account(&mut self, op: &str, step: &Step<'_>) -> Result<(), String> {
        let name = step.name("account")?;
        if op == "account.create" {
            let mut rng = step.rng()?;
            let account = Account::new_with_rng(&mut rng);
            rng.finish()?;
            check_identity_keys(step, &account)?;
            self.accounts.insert(name, account);
            return Ok(());
        }
        if op == "account.unpickle" {
            let key = step.hex("pickle_key")?;
            let result = Account::from_libolm_pickle(step.str("pickle")?, &key);
            if let Some(account) = expect_outcome(step, result, pickle_error)? {
                check_identity_keys(step, &account)?;
                self.accounts.insert(name, account);
            }
            return Ok(());
        }
        let account = lookup(&mut self.accounts, "account", &name)?;
        match op {
            "account.generate_one_time_keys" => {
                let mut rng = step.rng()?;
                account.generate_one_time_keys_with_rng(step.usize("count")?, &mut rng);
                rng.finish()?;
                check_eq("one-time keys", step.key_map("one_time_keys")?, key_ids(account.one_time_keys()))
            }
            "account.generate_fallback_key" => {
                let mut rng = step.rng()?;
                account.generate_fallback_key_with_rng(&mut rng);
                rng.finish()?;
                check_eq("fallback key", step.key_map("fallback_key")?, key_ids(account.fallback_key()))
            }
            "account.forget_old_fallback_key" => {
                account.forget_fallback_key();
                Ok(())
            }
            "account.mark_keys_as_published" => {
                account.mark_keys_as_published();
                Ok(())
            }
            "account.keys" => {
                check_eq("one-time keys", step.key_map("one_time_keys")?, key_ids(account.one_time_keys()))?;
                check_eq("fallback key", step.key_map("fallback_key")?, key_ids(account.fallback_key()))
            }
            "account.sign" => check_b64(
                "signature",
                step.str("signature")?,
                &account.sign(step.str("message")?.as_bytes()).to_base64(),
            ),
            "account.pickle" => {
                let key = step.hex("pickle_key")?;
                let pickle = account.to_libolm_pickle(&key).map_err(|e| e.to_string())?;
                check_pickle(step.str("pickle")?, &pickle, &key)
            }
            _ => Err(format!("unknown operation {op}")),
        }
    }

    fn session(&mut self, op: &str, step: &Step<'_>) -> Result<(), String> {
        let name = step.name("session")?;
        match op {
            "session.create_outbound" => {
                let account = lookup(&mut self.accounts, "account", &step.name("account")?)?;
                let mut rng = step.rng()?;
                let session = account
                    .create_outbound_session_with_rng(
                        olm::SessionConfig::version_1(),
                        curve_key(step, "their_identity_key")?,
                        curve_key(step, "their_one_time_key")?,
                        &mut rng,
                    )
                    .map_err(|e| e.to_string())?;
                rng.finish()?;
                check_b64("session id", step.str("session_id")?, &session.session_id().to_base64())?;
                self.sessions.insert(name, session);
                Ok(())
            }
            "session.create_inbound" => {
                let account = lookup(&mut self.accounts, "account", &step.name("account")?)?;
                let message = PreKeyMessage::from_base64(step.str("message")?).map_err(|e| e.to_string())?;
                // libolm's vectors are all in its format, version 1.
                let result = account.create_inbound_session(
                    olm::SessionConfig::version_1(),
                    curve_key(step, "their_identity_key")?,
                    &message,
                );
                if let Some(created) = expect_outcome(step, result, session_creation_error)? {
                    check_text("plaintext", step.str("plaintext")?, &created.plaintext)?;
                    check_b64("session id", step.str("session_id")?, &created.session.session_id().to_base64())?;
                    self.sessions.insert(name, created.session);
                }
                Ok(())
            }
            "session.unpickle" => {
                let key = step.hex("pickle_key")?;
                let result = Session::from_libolm_pickle(step.str("pickle")?, &key);
                if let Some(session) = expect_outcome(step, result, pickle_error)? {
                    check_b64("session id", step.str("session_id")?, &session.session_id().to_base64())?;
                    self.sessions.insert(name, session);
                }
                Ok(())
            }
            _ => {
                let session = lookup(&mut self.sessions, "session", &name)?;
                match op {
                    "session.encrypt" => {
                        let mut rng = step.rng()?;
                        let message = session.encrypt_with_rng(step.str("plaintext")?.as_bytes(), &mut rng);
                        rng.finish()?;
                        let (message_type, body) = message.to_parts();
                        check_eq("message type", step.u64("message_type")?, message_type as u64)?;
                        check_b64("message", step.str("message")?, &body)
                    }
                    "session.decrypt" => {
                        let message = OlmMessage::from_parts(message_type(step)?, step.str("message")?)
                            .map_err(|e| e.to_string())?;
                        let result = session.decrypt(&message);
                        if let Some(plaintext) = expect_outcome(step, result, olm_decryption_error)? {
                            check_text("plaintext", step.str("plaintext")?, &plaintext)?;
                        }
                        Ok(())
                    }
                    "session.matches_inbound" => {
                        let message = PreKeyMessage::from_base64(step.str("message")?).map_err(|e| e.to_string())?;
                        check_eq("matches", step.bool("matches")?, session.matches(&message))
                    }
                    "session.pickle" => {
                        let key = step.hex("pickle_key")?;
                        let pickle = session.to_libolm_pickle(&key).map_err(|e| e.to_string())?;
                        check_pickle(step.str("pickle")?, &pickle, &key)
                    }
                    _ => Err(format!("unknown operation {op}")),
                }
            }
        }
    }

    fn group(&mut self, op: &str, step: &Step<'_>) -> Result<(), String> {
        let name = step.name("group")?;
        match op {
            "group.create" => {
                let mut rng = step.rng()?;
                let group = GroupSession::new_with_rng(megolm::SessionConfig::version_1(), &mut rng);
                rng.finish()?;
                check_b64("session id", step.str("session_id")?, &group.session_id().to_base64())?;
                check_b64("session key", step.str("session_key")?, &group.session_key().to_base64())?;
                check_eq("message index", step.u32("message_index")?, group.message_index())?;
                self.groups.insert(name, group);
                Ok(())
            }
            "group.unpickle" => {
                let key = step.hex("pickle_key")?;
                let result = GroupSession::from_libolm_pickle(step.str("pickle")?, &key);
                if let Some(group) = expect_outcome(step, result, pickle_error)? {
                    check_b64("session id", step.str("session_id")?, &group.session_id().to_base64())?;
                    check_eq("message index", step.u32("message_index")?, group.message_index())?;
                    self.groups.insert(name, group);
                }
                Ok(())
            }
            _ => {
                let group = lookup(&mut self.groups, "group session", &name)?;
                match op {
                    "group.encrypt" => {
                        let message = group.encrypt(step.str("plaintext")?.as_bytes());
                        check_b64("message", step.str("message")?, &message.to_base64())
                    }
                    "group.session_key" => {
                        check_eq("message index", step.u32("message_index")?, group.message_index())?;
                        check_b64("session key", step.str("session_key")?, &group.session_key().to_base64())
                    }
                    "group.pickle" => {
                        let key = step.hex("pickle_key")?;
                        let pickle = group.to_libolm_pickle(&key).map_err(|e| e.to_string())?;
                        check_pickle(step.str("pickle")?, &pickle, &key)
                    }
                    _ => Err(format!("unknown operation {op}")),
                }
            }
        }
    }

    fn inbound(&mut self, op: &str, step: &Step<'_>) -> Result<(), String> {
        let name = step.name("inbound")?;
        let created = match op {
            "inbound.create" => {
                let key = SessionKey::from_base64(step.str("session_key")?).map_err(|e| e.to_string())?;
                Some(InboundGroupSession::new(&key, megolm::SessionConfig::version_1()))
            }
            "inbound.import" => {
                let key = ExportedSessionKey::from_base64(step.str("exported_key")?).map_err(|e| e.to_string())?;
                Some(InboundGroupSession::import(&key, megolm::SessionConfig::version_1()))
            }
            "inbound.unpickle" => {
                let key = step.hex("pickle_key")?;
                let result = InboundGroupSession::from_libolm_pickle(step.str("pickle")?, &key);
                match expect_outcome(step, result, pickle_error)? {
                    Some(session) => Some(session),
                    None => return Ok(()),
                }
            }
            _ => None,
        };
        if let Some(session) = created {
            check_b64("session id", step.str("session_id")?, &session.session_id().to_base64())?;
            check_eq("first known index", step.u32("first_known_index")?, session.first_known_index())?;
            self.inbounds.insert(name, session);
            return Ok(());
        }
        let session = lookup(&mut self.inbounds, "inbound group session", &name)?;
        match op {
            "inbound.decrypt" => {
                let message = MegolmMessage::from_base64(step.str("message")?).map_err(|e| e.to_string())?;
                let result = session.decrypt(&message);
                if let Some(decrypted) = expect_outcome(step, result, megolm_decryption_error)? {
                    check_text("plaintext", step.str("plaintext")?, &decrypted.plaintext)?;
                    check_eq("message index", step.u32("message_index")?, decrypted.message_index)?;
                }
                Ok(())
            }
            "inbound.export" => {
                let index = step.u32("message_index")?;
                let exported = session.export_at(index).ok_or(()).map(|key| key.to_base64());
                if let Some(exported) = expect_outcome(step, exported, |()| "UNKNOWN_MESSAGE_INDEX".to_owned())? {
                    check_b64("exported key", step.str("exported_key")?, &exported)?;
                }
                Ok(())
            }
            "inbound.is_verified" => check_eq("verified", step.bool("verified")?, session.is_verified()),
            "inbound.pickle" => {
                let key = step.hex("pickle_key")?;
                let pickle = session.to_libolm_pickle(&key).map_err(|e| e.to_string())?;
                check_pickle(step.str("pickle")?, &pickle, &key)
            }
            _ => Err(format!("unknown operation {op}")),
        }
    }

    fn sas(&mut self, op: &str, step: &Step<'_>) -> Result<(), String> {
        let name = step.name("sas")?;
        if op == "sas.create" {
            let mut rng = step.rng()?;
            let sas = Sas::new_with_rng(&mut rng);
            rng.finish()?;
            check_b64("public key", step.str("public_key")?, &sas.public_key().to_base64())?;
            self.sas.insert(name, SasState::Created(sas));
            return Ok(());
        }
        if op == "sas.set_their_key" {
            let their_key = curve_key(step, "their_key")?;
            let Some(SasState::Created(sas)) = self.sas.remove(&name) else {
                return Err(format!("no SAS named \"{name}\" waiting for the other side's key"));
            };
            let established = sas.diffie_hellman(their_key).map_err(|e| e.to_string())?;
            self.sas.insert(name, SasState::Established(established));
            return Ok(());
        }
        let Some(SasState::Established(sas)) = self.sas.get(&name) else {
            return Err(format!("no SAS named \"{name}\" with the other side's key set"));
        };
        match op {
            "sas.generate_bytes" => {
                let bytes =
                    sas.generate_bytes(step.str("info")?, step.usize("length")?).ok_or("ferrolm refused the length")?;
                check_bytes("SAS bytes", &step.hex("bytes")?, &bytes)
            }
            "sas.calculate_mac" => {
                let (input, info, expected) = (step.str("input")?, step.str("info")?, step.str("mac")?);
                check_b64("MAC", expected, &sas.calculate_mac(input, info).to_base64())?;
                let mac = SasMac::from_base64(expected).map_err(|e| e.to_string())?;
                sas.verify_mac(input, info, &mac).map_err(|e| format!("verify_mac refused libolm's MAC: {e}"))
            }
            "sas.calculate_mac_legacy" => {
                let (input, info, expected) = (step.str("input")?, step.str("info")?, step.str("mac")?);
                check_eq("legacy MAC", expected, sas.calculate_mac_invalid_base64(input, info).as_str())?;
                sas.verify_mac_invalid_base64(input, info, expected)
                    .map_err(|e| format!("verify_mac_invalid_base64 refused libolm's MAC: {e}"))
            }
            _ => Err(format!("unknown operation {op}")),
        }
    }

    fn pk(&mut self, op: &str, step: &Step<'_>) -> Result<(), String> {
        match op {
            "pk_decryption.create" => {
                let private_key = step.hex_array::<32>("random")?;
                let mut rng = ReplayRng::new(private_key.to_vec());
                let key = PkDecryption::new_with_rng(&mut rng);
                rng.finish()?;
                check_b64("public key", step.str("public_key")?, &key.public_key().to_base64())?;
                // The same key from the private key bytes (libolm's olm_pk_key_from_private).
                let from_bytes = PkDecryption::from_bytes(&private_key);
                check_eq("public key from the private key", key.public_key(), from_bytes.public_key())?;
                check_bytes("private key", &private_key, key.to_bytes().as_ref())?;
                self.pks.insert(step.name("pk")?, key);
                Ok(())
            }
            "pk_decryption.unpickle" => {
                let name = step.name("pk")?;
                let key = step.hex("pickle_key")?;
                let result = PkDecryption::from_libolm_pickle(step.str("pickle")?, &key);
                if let Some(decryption) = expect_outcome(step, result, pickle_error)? {
                    check_b64("public key", step.str("public_key")?, &decryption.public_key().to_base64())?;
                    self.pks.insert(name, decryption);
                }
                Ok(())
            }
            "pk_decryption.decrypt" | "pk_decryption.pickle" => {
                let key = lookup(&mut self.pks, "PK decryption key", &step.name("pk")?)?;
                if op == "pk_decryption.pickle" {
                    let pickle_key = step.hex("pickle_key")?;
                    return check_pickle(step.str("pickle")?, &key.to_libolm_pickle(&pickle_key), &pickle_key);
                }
                let message =
                    PkMessage::from_base64(step.str("ciphertext")?, step.str("mac")?, step.str("ephemeral_key")?)
                        .map_err(|e| e.to_string())?;
                if let Some(plaintext) = expect_outcome(step, key.decrypt(&message), pk_error)? {
                    check_text("plaintext", step.str("plaintext")?, &plaintext)?;
                }
                Ok(())
            }
            "pk_encryption.encrypt" => {
                let encryption =
                    PkEncryption::from_key(curve_key(step, "recipient_key")?).map_err(|e| e.to_string())?;
                let mut rng = step.rng()?;
                let message = encryption.encrypt_with_rng(step.str("plaintext")?.as_bytes(), &mut rng);
                rng.finish()?;
                let (ciphertext, mac, ephemeral_key) = message.to_base64();
                check_b64("ephemeral key", step.str("ephemeral_key")?, &ephemeral_key)?;
                check_b64("ciphertext", step.str("ciphertext")?, &ciphertext)?;
                check_b64("MAC", step.str("mac")?, &mac)
            }
            "pk_signing.create" => {
                let signing = PkSigning::from_seed(&step.hex_array::<32>("seed")?);
                check_b64("public key", step.str("public_key")?, &signing.public_key().to_base64())?;
                self.signings.insert(step.name("signing")?, signing);
                Ok(())
            }
            "pk_signing.sign" => {
                let signing = lookup(&mut self.signings, "PK signing key", &step.name("signing")?)?;
                let message = step.str("message")?.as_bytes();
                let signature = signing.sign(message);
                check_b64("signature", step.str("signature")?, &signature.to_base64())?;
                signing.public_key().verify(message, &signature).map_err(|e| e.to_string())
            }
            _ => Err(format!("unknown operation {op}")),
        }
    }
}

/// Matrix formats outside libolm: key export files and secret storage.
fn matrix(op: &str, step: &Step<'_>) -> Result<(), String> {
    let key = || step.hex_array::<32>("key").map(SecretStorageKey::from_bytes);
    match op {
        "key_export.encrypt" => {
            let (passphrase, plaintext) = (step.str("passphrase")?, step.str("plaintext")?);
            let mut rng = step.rng()?;
            let file = key_export::encrypt_with_rng(plaintext.as_bytes(), passphrase, step.u32("rounds")?, &mut rng)
                .map_err(|e| e.to_string())?;
            rng.finish()?;
            // The payload byte for byte; the armour's line length is not compared (Element's
            // lines hold 128 characters, ferrolm's 96, and readers ignore line breaks).
            let body: String = file
                .lines()
                .filter(|line| !line.starts_with("-----"))
                .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
                .collect();
            let payload = base64_decode(&body).map_err(|e| format!("ferrolm's file: {e}"))?;
            let expected = base64_decode(step.str("payload")?).map_err(|e| format!("field \"payload\": {e}"))?;
            check_bytes("key export payload", &expected, &payload)?;
            let decrypted = key_export::decrypt(step.str("file")?, passphrase).map_err(|e| e.to_string())?;
            check_text("plaintext of the Element-armoured file", plaintext, &decrypted)
        }
        "secret_storage.encrypt" => {
            let (name, secret) = (step.str("name")?, step.str("secret")?);
            let mut rng = step.rng()?;
            let encrypted = key()?.encrypt_with_rng(name, secret.as_bytes(), &mut rng);
            rng.finish()?;
            let (iv, ciphertext, mac) = encrypted.to_base64();
            check_b64("IV", step.str("iv")?, &iv)?;
            check_b64("ciphertext", step.str("ciphertext")?, &ciphertext)?;
            check_b64("MAC", step.str("mac")?, &mac)?;
            let decrypted = key()?.decrypt(name, &encrypted).map_err(|e| e.to_string())?;
            check_text("decrypted secret", secret, &decrypted)
        }
        "secret_storage.key_check" => {
            let mut rng = step.rng()?;
            let encrypted = key()?.encrypt_with_rng("", &[0; 32], &mut rng);
            rng.finish()?;
            let (iv, _, mac) = encrypted.to_base64();
            check_b64("IV", step.str("iv")?, &iv)?;
            check_b64("MAC", step.str("mac")?, &mac)?;
            let check = KeyCheck::from_base64(step.str("iv")?, step.str("mac")?).map_err(|e| e.to_string())?;
            key()?.verify_key_check(&check).map_err(|e| format!("verify_key_check refused the check: {e}"))
        }
        "secret_storage.recovery_key" => {
            let expected = step.str("recovery_key")?;
            check_eq("recovery key", expected, key()?.to_recovery_key().as_str())?;
            let restored = SecretStorageKey::from_recovery_key(expected).map_err(|e| e.to_string())?;
            check_bytes("key from the recovery key", key()?.as_bytes(), restored.as_bytes())
        }
        "secret_storage.from_passphrase" => {
            let derived =
                SecretStorageKey::from_passphrase(step.str("passphrase")?, step.str("salt")?, step.u32("iterations")?)
                    .map_err(|e| format!("from_passphrase: {e}"))?;
            check_bytes("key", &step.hex("key")?, derived.as_bytes())
        }
        _ => Err(format!("unknown operation {op}")),
    }
}

/// The primitives' RFC vectors. ferrolm's public API covers X25519 public keys and Ed25519;
/// X25519 on arbitrary points, HKDF and HMAC are internal to ferrolm, so those vectors check
/// the very crates ferrolm is built on (x25519-dalek, hkdf, hmac, at the workspace's versions).
fn primitive(op: &str, step: &Step<'_>) -> Result<(), String> {
    use hmac::Mac;
    match op {
        "x25519.public_key" => {
            let private_key = step.hex_array::<32>("private_key")?;
            let expected = step.hex("public_key")?;
            let public = Curve25519SecretKey::from_bytes(&private_key).public_key();
            check_bytes("public key", &expected, public.as_bytes())?;
            check_bytes(
                "PK decryption public key",
                &expected,
                PkDecryption::from_bytes(&private_key).public_key().as_bytes(),
            )
        }
        "x25519.scalar_mult" => {
            let output = x25519_dalek::x25519(step.hex_array("scalar")?, step.hex_array("u")?);
            check_bytes("X25519 output", &step.hex("output")?, &output)
        }
        "x25519.iterate" => {
            let (mut k, mut u) = ([0u8; 32], [0u8; 32]);
            (k[0], u[0]) = (9, 9);
            for _ in 0..step.u64("iterations")? {
                (k, u) = (x25519_dalek::x25519(k, u), k);
            }
            check_bytes("X25519 after the iterations", &step.hex("output")?, &k)
        }
        "ed25519.sign" => {
            let seed = step.hex_array::<32>("seed")?;
            let message = step.hex("message")?;
            let pair = Ed25519Keypair::from_seed(&seed);
            let expected_public = step.hex_array::<32>("public_key")?;
            check_bytes("public key", &expected_public, pair.public_key().as_bytes())?;
            let expected_signature = step.hex("signature")?;
            check_bytes("signature", &expected_signature, &pair.sign(&message).to_bytes())?;
            check_bytes(
                "PK signing public key",
                &expected_public,
                PkSigning::from_seed(&seed).public_key().as_bytes(),
            )?;
            let public = Ed25519PublicKey::from_bytes(&expected_public).map_err(|e| e.to_string())?;
            let signature = Ed25519Signature::from_slice(&expected_signature).map_err(|e| e.to_string())?;
            public.verify(&message, &signature).map_err(|e| format!("the RFC signature does not verify: {e}"))
        }
        "hkdf_sha256" => {
            let (prk, hkdf) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(&step.hex("salt")?), &step.hex("ikm")?);
            check_bytes("PRK", &step.hex("prk")?, &prk)?;
            let mut okm = vec![0u8; step.usize("length")?];
            hkdf.expand(&step.hex("info")?, &mut okm).map_err(|e| e.to_string())?;
            check_bytes("OKM", &step.hex("okm")?, &okm)
        }
        "hmac_sha256" => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&step.hex("key")?).map_err(|e| e.to_string())?;
            mac.update(&step.hex("data")?);
            let full = mac.finalize().into_bytes();
            let expected = step.hex("mac")?;
            check_bytes("HMAC", &expected, full.get(..expected.len()).unwrap_or(&full))
        }
        _ => Err(format!("unknown operation {op}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test` sets `CARGO_MANIFEST_DIR` when it runs the test binary; reading it at run
    /// time (not with `env!`) keeps the test right when a shared target directory holds a
    /// binary that another checkout of the same commit compiled.
    fn vectors_dir() -> std::path::PathBuf {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(), std::path::PathBuf::from);
        manifest_dir.join("../../test-vectors")
    }

    #[test]
    fn every_known_answer_vector_replays_byte_for_byte() {
        let reports = replay_dir(&vectors_dir()).unwrap();
        let mut out = String::new();
        for report in &reports {
            report.print(&mut out);
        }
        let total: usize = reports.iter().map(|r| r.vectors).sum();
        let passed: usize = reports.iter().map(|r| r.passed).sum();
        assert!(total >= 300, "only {total} vectors\n{out}");
        assert_eq!(passed, total, "{} of {total} vectors failed\n{out}", total - passed);
    }

    #[test]
    fn the_replay_rng_refuses_too_few_and_too_many_bytes() {
        use rand_core::RngCore;
        let mut rng = ReplayRng::new(vec![1, 2, 3]);
        let mut buf = [0u8; 3];
        rng.fill_bytes(&mut buf);
        assert_eq!(buf, [1, 2, 3]);
        assert!(rng.finish().is_ok());

        let mut short = ReplayRng::new(vec![1, 2]);
        short.fill_bytes(&mut buf);
        assert_eq!(short.finish().unwrap_err(), "ferrolm asked for 3 random bytes, the vector supplies 2");

        let mut long = ReplayRng::new(vec![1, 2, 3, 4]);
        long.fill_bytes(&mut buf);
        assert_eq!(long.finish().unwrap_err(), "ferrolm used 3 random bytes, the vector supplies 4");
    }

    #[test]
    fn a_wrong_expected_value_or_an_unchecked_field_fails_the_vector() {
        let vector = |extra: &str| -> Value {
            serde_json::from_str(&format!(
                r#"{{"id":"t","type":"hmac_sha256","description":"","steps":[{{"op":"hmac_sha256",
                "key":"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b","data":"4869205468657265",
                "mac":"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"{extra}}}]}}"#
            ))
            .unwrap()
        };
        assert_eq!(replay_vector(&vector("")), Ok(()));
        let error = replay_vector(&vector(r#","surprise":1"#)).unwrap_err();
        assert!(error.contains("fields not checked by the replay"), "{error}");
        let mut wrong = vector("");
        wrong["steps"][0]["mac"] = Value::from("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff8");
        let error = replay_vector(&wrong).unwrap_err();
        assert!(error.contains("HMAC differs at byte 31"), "{error}");
        let mut unknown = vector("");
        unknown["steps"][0]["op"] = Value::from("hmac_sha512");
        assert!(replay_vector(&unknown).unwrap_err().contains("unknown operation"));
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(hex_decode("00ff10").unwrap(), vec![0, 255, 16]);
        assert_eq!(hex_encode(&[0, 255, 16]), "00ff10");
        assert!(hex_decode("0").is_err());
        assert!(hex_decode("zz").is_err());
    }
}
