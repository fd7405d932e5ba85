//! `ferrolm inspect`: decode a message and print its fields, without any key.

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

/// A readable description of an Olm message. Without a type, a pre-key message is tried
/// first (its required fields make it unambiguous), then a normal message.
pub(crate) fn describe(input: &str, message_type: Option<MessageType>) -> Result<String, String> {
    let bytes = base64_decode(input).map_err(|_| "the input is not valid base64".to_owned())?;
    let pre_key = || PreKeyMessage::from_bytes(&bytes).map(|m| describe_pre_key(&m));
    let normal = || Message::from_bytes(&bytes).map(|m| describe_normal(&m, ""));
    let explain = |kind: &str, e: DecodeError| format!("not a valid Olm {kind} message: {e}");
    match message_type {
        Some(MessageType::PreKey) => pre_key().map_err(|e| explain("pre-key", e)),
        Some(MessageType::Normal) => normal().map_err(|e| explain("normal", e)),
        None => pre_key().or_else(|pre_key_error| {
            normal().map_err(|normal_error| {
                format!(
                    "not an Olm message ({} bytes)\n  as a pre-key message: {pre_key_error}\n  as a normal message: {normal_error}",
                    bytes.len()
                )
            })
        }),
    }
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
        assert!(error.contains("as a pre-key message") && error.contains("as a normal message"), "{error}");
        assert!(describe(&inner, Some(MessageType::PreKey)).is_err());
    }
}
