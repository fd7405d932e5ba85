//! `ferrolm inspect`: decode a message and print its fields, without any key.

use ferrolm::megolm::{self, ExportedSessionKey, MegolmMessage, SessionKey};
use ferrolm::olm::{DecodeError, Message, MessageType, PreKeyMessage};
use ferrolm::types::{base64_decode, base64_encode};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let (message_type, rest) = crate::take_option(args, "--type")?;
    let [input] = rest.as_slice() else {
        return Err("usage: ferrolm inspect [--type 0|1] BASE64".to_owned());
    };
    let message_type = match message_type.as_deref() {
        None => None,
        Some("0") => Some(MessageType::PreKey),
        Some("1") => Some(MessageType::Normal),
        Some(other) => return Err(format!("--type must be 0 (pre-key) or 1 (normal), not `{other}`")),
    };
    print!("{}", describe(input.trim(), message_type)?);
    Ok(())
}

/// A readable description of an Olm message, a Megolm message or a Megolm session key.
///
/// With `--type`, only that Olm message type is tried. Otherwise each format is tried in
/// turn: the required fields of each make them unambiguous (an Olm message's field 1 is a
/// key, a Megolm message's a varint; session keys have fixed lengths and version bytes).
pub(crate) fn describe(input: &str, message_type: Option<MessageType>) -> Result<String, String> {
    let bytes = base64_decode(input).map_err(|_| "the input is not valid base64".to_owned())?;
    let pre_key = || PreKeyMessage::from_bytes(&bytes).map(|m| describe_pre_key(&m));
    let normal = || Message::from_bytes(&bytes).map(|m| describe_normal(&m, ""));
    let explain = |kind: &str, e: DecodeError| format!("not a valid Olm {kind} message: {e}");
    match message_type {
        Some(MessageType::PreKey) => return pre_key().map_err(|e| explain("pre-key", e)),
        Some(MessageType::Normal) => return normal().map_err(|e| explain("normal", e)),
        None => {}
    }
    let mut attempts = Vec::new();
    match pre_key() {
        Ok(text) => return Ok(text),
        Err(e) => attempts.push(format!("as an Olm pre-key message: {e}")),
    }
    match normal() {
        Ok(text) => return Ok(text),
        Err(e) => attempts.push(format!("as an Olm normal message: {e}")),
    }
    match MegolmMessage::from_bytes(&bytes) {
        Ok(m) => return Ok(describe_megolm(&m)),
        Err(e) => attempts.push(format!("as a Megolm message: {e}")),
    }
    match describe_session_key(&bytes) {
        Ok(text) => return Ok(text),
        Err(e) => attempts.push(format!("as a Megolm session key: {e}")),
    }
    Err(format!("not an Olm or Megolm message or session key ({} bytes)\n  {}", bytes.len(), attempts.join("\n  ")))
}

fn describe_megolm(message: &MegolmMessage) -> String {
    format!(
        "Megolm message (m.megolm.v1.aes-sha2), {} bytes\n  version:        {} ({}-byte MAC)\n  message index:  {}\n  ciphertext:     {} bytes\n  MAC:            {}\n  signature:      {} (checked only against the session's key)\n",
        message.as_bytes().len(),
        message.version(),
        message.mac().len(),
        message.message_index(),
        message.ciphertext().len(),
        hex(message.mac()),
        message.signature().to_base64(),
    )
}

/// A session key (signed, 229 bytes) or an exported one (165 bytes). A signed key whose
/// signature fails is still described, read as the exported form it embeds.
fn describe_session_key(bytes: &[u8]) -> Result<String, megolm::DecodeError> {
    let signed = match SessionKey::from_bytes(bytes) {
        Ok(key) => {
            return Ok(session_key_text("signed session key (m.room_key)", key.index(), &key.session_id(), "valid"));
        }
        Err(megolm::DecodeError::InvalidSignature) => true,
        Err(megolm::DecodeError::UnknownVersion(1)) => false,
        Err(other) => return Err(other),
    };
    // Read the 165 bytes the signature covers as the unsigned (exported) form they embed.
    let mut unsigned = bytes.get(..165).unwrap_or(bytes).to_vec();
    if let Some(version) = unsigned.first_mut() {
        *version = 1;
    }
    let key = ExportedSessionKey::from_bytes(&unsigned)?;
    Ok(if signed {
        session_key_text(
            "signed session key (m.room_key)",
            key.index(),
            &key.session_id(),
            "INVALID: altered or forged",
        )
    } else {
        session_key_text(
            "exported session key (forwarded keys, backups)",
            key.index(),
            &key.session_id(),
            "none (unsigned format)",
        )
    })
}

fn session_key_text(kind: &str, index: u32, session_id: &megolm::SessionId, signature: &str) -> String {
    format!(
        "Megolm {kind}\n  first index:    {index}\n  session id:     {session_id}\n  signature:      {signature}\n  (the ratchet itself is secret and is not printed)\n"
    )
}

fn describe_pre_key(message: &PreKeyMessage) -> String {
    format!(
        "Olm pre-key message (type 0), {} bytes\n  version:        3\n  session id:     {}\n  one-time key:   {}\n  base key:       {}\n  identity key:   {}\n  inner message:\n{}",
        message.as_bytes().len(),
        message.session_id(),
        message.one_time_key(),
        message.base_key(),
        message.identity_key(),
        describe_normal(message.message(), "    "),
    )
}

fn describe_normal(message: &Message, indent: &str) -> String {
    let mac_kind = if message.mac().len() == 8 { "truncated HMAC-SHA-256" } else { "HMAC-SHA-256" };
    format!(
        "{indent}Olm normal message (type 1), {} bytes\n{indent}  version:        {} ({}-byte MAC)\n{indent}  ratchet key:    {}\n{indent}  chain index:    {}\n{indent}  ciphertext:     {} bytes\n{indent}  MAC:            {} ({mac_kind}, base64 {})\n",
        message.as_bytes().len(),
        message.version(),
        message.mac().len(),
        message.ratchet_key(),
        message.chain_index(),
        message.ciphertext().len(),
        hex(message.mac()),
        base64_encode(message.mac()),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolm::olm::{Account, OlmMessage, SessionConfig};

    #[test]
    fn describes_both_message_types_and_refuses_garbage() {
        let alice = Account::new();
        let mut bob = Account::new();
        bob.generate_one_time_keys(1);
        let otk = *bob.one_time_keys().values().next().unwrap();
        let mut session = alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
        let message = session.encrypt(b"hello");
        let (_, body) = message.to_parts();
        let text = describe(&body, None).unwrap();
        assert!(text.contains("pre-key message"), "{text}");
        assert!(text.contains(&otk.to_base64()));
        assert!(text.contains("chain index:    0"));
        let OlmMessage::PreKey(pre_key) = message else { panic!() };
        let inner = base64_encode(pre_key.message().as_bytes());
        let text = describe(&inner, Some(MessageType::Normal)).unwrap();
        assert!(text.contains("8-byte MAC") && text.contains("ciphertext:     16 bytes"), "{text}");

        assert!(describe("!!!", None).unwrap_err().contains("base64"));
        let error = describe("AwoA", None).unwrap_err();
        assert!(error.contains("as an Olm pre-key message") && error.contains("as a Megolm message"), "{error}");
        assert!(describe(&inner, Some(MessageType::PreKey)).is_err());
    }

    #[test]
    fn describes_megolm_messages_and_session_keys() {
        use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig};
        let mut outbound = GroupSession::new(SessionConfig::version_1());
        outbound.encrypt(b"one");
        let message = outbound.encrypt(b"two");
        let text = describe(&message.to_base64(), None).unwrap();
        assert!(text.contains("Megolm message") && text.contains("message index:  1"), "{text}");

        let key = outbound.session_key();
        let text = describe(&key.to_base64(), None).unwrap();
        assert!(
            text.contains("signed session key") && text.contains("valid") && text.contains("first index:    2"),
            "{text}"
        );
        assert!(text.contains(&outbound.session_id().to_base64()));
        assert!(!text.contains(key.to_base64().as_str()));

        let mut forged = key.to_bytes().to_vec();
        forged[20] ^= 1;
        let text = describe(&base64_encode(&forged), None).unwrap();
        assert!(text.contains("INVALID"), "{text}");

        let exported = InboundGroupSession::new(&key, SessionConfig::version_1()).export_at(7).unwrap();
        let text = describe(&exported.to_base64(), None).unwrap();
        assert!(text.contains("exported session key") && text.contains("first index:    7"), "{text}");

        let error = describe(&base64_encode([2u8; 100]), None).unwrap_err();
        assert!(error.contains("as a Megolm session key"), "{error}");
    }
}
