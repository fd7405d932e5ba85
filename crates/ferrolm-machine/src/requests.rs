//! The requests the machine asks the client to send, and the responses it takes back: the
//! client-server API's own types (ruma's), so the bodies are exactly the API's JSON.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ruma::api::client::backup::{add_backup_keys, create_backup_version};
use ruma::api::client::keys::{
    claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys,
};
use ruma::api::client::to_device::send_event_to_device;
use ruma::api::client::uiaa::AuthData;
use ruma::api::{IncomingResponse as _, OutgoingRequest as _, SupportedVersions, auth_scheme::SendAccessToken};

/// The kind of an [`OutgoingRequest`], which says how to send it (method and path) and how
/// to read its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `POST /_matrix/client/v3/keys/upload`
    KeysUpload,
    /// `POST /_matrix/client/v3/keys/query`
    KeysQuery,
    /// `POST /_matrix/client/v3/keys/claim`
    KeysClaim,
    /// `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
    ToDevice,
    /// `POST /_matrix/client/v3/keys/signatures/upload`
    SignatureUpload,
    /// `POST /_matrix/client/v3/keys/device_signing/upload`: may need user-interactive
    /// authentication ([`OutgoingRequest::may_need_interactive_auth`]).
    SigningKeysUpload,
    /// `GET /_matrix/client/v3/keys/changes`
    KeysChanges,
    /// `PUT /_matrix/client/v3/room_keys/keys?version=…` (room keys into the server-side backup)
    KeysBackup,
    /// `POST /_matrix/client/v3/room_keys/version` (a new server-side backup version)
    BackupVersionCreate,
}

impl RequestKind {
    /// The HTTP method.
    pub fn method(self) -> &'static str {
        match self {
            Self::ToDevice | Self::KeysBackup => "PUT",
            Self::KeysChanges => "GET",
            _ => "POST",
        }
    }
}

/// A request body, as ruma's type for the endpoint.
#[derive(Debug, Clone)]
pub enum Request {
    /// Publish device keys, one-time keys, fallback keys.
    KeysUpload(upload_keys::v3::Request),
    /// Download other users' device keys.
    KeysQuery(get_keys::v3::Request),
    /// Claim one-time keys to open Olm sessions.
    KeysClaim(claim_keys::v3::Request),
    /// Send to-device messages (the transaction id is in the request).
    ToDevice(send_event_to_device::v3::Request),
    /// Publish signatures of keys.
    SignatureUpload(upload_signatures::v3::Request),
    /// Publish the cross-signing public keys (with the user-interactive auth, once given).
    SigningKeysUpload(upload_signing_keys::v3::Request),
    /// The users whose devices changed between two sync tokens.
    KeysChanges(get_key_changes::v3::Request),
    /// Upload encrypted room keys to the server-side backup.
    KeysBackup(add_backup_keys::v3::Request),
    /// Create a new server-side backup version (its signed `auth_data`).
    BackupVersionCreate(create_backup_version::v3::Request),
}

/// A request the client must send for the machine, with the id it reports the response under
/// ([`OlmMachine::mark_request_as_sent`](crate::OlmMachine::mark_request_as_sent)).
///
/// The client either uses the ruma request directly, or sends [`OutgoingRequest::method`] to
/// [`OutgoingRequest::path`] with [`OutgoingRequest::body_json`] as the body.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// The id to report the response under. For to-device requests it is also the
    /// transaction id, so a resent request is idempotent.
    pub request_id: String,
    /// The request.
    pub request: Request,
}

/// Why a request could not be turned into HTTP (a bug in the request's construction, never
/// the network's doing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request cannot be serialized: {0}")]
pub struct RequestSerializationError(pub String);

fn versions() -> SupportedVersions {
    SupportedVersions::from_parts(&["v1.1".to_owned()], &BTreeMap::new())
}

impl OutgoingRequest {
    /// The request's kind.
    pub fn kind(&self) -> RequestKind {
        match &self.request {
            Request::KeysUpload(_) => RequestKind::KeysUpload,
            Request::KeysQuery(_) => RequestKind::KeysQuery,
            Request::KeysClaim(_) => RequestKind::KeysClaim,
            Request::ToDevice(_) => RequestKind::ToDevice,
            Request::SignatureUpload(_) => RequestKind::SignatureUpload,
            Request::SigningKeysUpload(_) => RequestKind::SigningKeysUpload,
            Request::KeysChanges(_) => RequestKind::KeysChanges,
            Request::KeysBackup(_) => RequestKind::KeysBackup,
            Request::BackupVersionCreate(_) => RequestKind::BackupVersionCreate,
        }
    }

    /// Whether the homeserver may answer `401` with a user-interactive authentication
    /// challenge (the cross-signing keys upload): the app then authenticates the user and sends
    /// [`OutgoingRequest::with_auth`] (same request id) instead.
    pub fn may_need_interactive_auth(&self) -> bool {
        matches!(self.request, Request::SigningKeysUpload(_))
    }

    /// The request with the user-interactive authentication `auth` (the app's answer to the
    /// server's challenge), for the requests that take one; other requests are unchanged.
    pub fn with_auth(&self, auth: AuthData) -> Self {
        let mut out = self.clone();
        if let Request::SigningKeysUpload(r) = &mut out.request {
            r.auth = Some(auth);
        }
        out
    }

    /// The HTTP method.
    pub fn method(&self) -> &'static str {
        self.kind().method()
    }

    /// The request as HTTP, against `base_url` (`https://matrix.example.org`), authenticated
    /// with `access_token`.
    pub fn to_http_request(
        &self,
        base_url: &str,
        access_token: &str,
    ) -> Result<http::Request<Vec<u8>>, RequestSerializationError> {
        let token = SendAccessToken::Always(access_token);
        let v = versions();
        let path = Cow::Borrowed(&v);
        let result = match &self.request {
            Request::KeysUpload(r) => r.clone().try_into_http_request(base_url, token, path),
            Request::KeysQuery(r) => r.clone().try_into_http_request(base_url, token, path),
            Request::KeysClaim(r) => r.clone().try_into_http_request(base_url, token, path),
            Request::ToDevice(r) => r.clone().try_into_http_request(base_url, token, path),
            Request::SignatureUpload(r) => r.clone().try_into_http_request(base_url, token, path),
            Request::SigningKeysUpload(r) => r.clone().try_into_http_request(base_url, token, path),
            Request::KeysChanges(r) => r.clone().try_into_http_request(base_url, token, path),
            Request::KeysBackup(r) => r.clone().try_into_http_request(base_url, token, path),
            Request::BackupVersionCreate(r) => r.clone().try_into_http_request(base_url, token, path),
        };
        result.map_err(|e| RequestSerializationError(e.to_string()))
    }

    /// The path (and query) of the request, e.g. `/_matrix/client/v3/keys/upload`.
    pub fn path(&self) -> Result<String, RequestSerializationError> {
        let http = self.to_http_request("https://homeserver.invalid", "")?;
        Ok(http.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default())
    }

    /// The request body: the client-server API v3 JSON.
    pub fn body_json(&self) -> Result<String, RequestSerializationError> {
        let http = self.to_http_request("https://homeserver.invalid", "")?;
        String::from_utf8(http.into_body()).map_err(|e| RequestSerializationError(e.to_string()))
    }
}

/// A response to an [`OutgoingRequest`], as ruma's type for the endpoint.
#[derive(Debug, Clone)]
pub enum IncomingResponse {
    /// The one-time key counts after an upload.
    KeysUpload(upload_keys::v3::Response),
    /// Device keys and cross-signing keys.
    KeysQuery(get_keys::v3::Response),
    /// Claimed one-time keys.
    KeysClaim(claim_keys::v3::Response),
    /// The to-device messages were accepted.
    ToDevice(send_event_to_device::v3::Response),
    /// Signature upload failures, if any.
    SignatureUpload(upload_signatures::v3::Response),
    /// The cross-signing keys were published.
    SigningKeysUpload(upload_signing_keys::v3::Response),
    /// The users whose devices changed, and those no longer sharing a room.
    KeysChanges(get_key_changes::v3::Response),
    /// The backup's new etag and key count.
    KeysBackup(add_backup_keys::v3::Response),
    /// The new backup version.
    BackupVersionCreate(create_backup_version::v3::Response),
}

/// Why a response body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind:?} response: {reason}")]
pub struct ResponseParseError {
    /// The request kind the body was read as.
    pub kind: RequestKind,
    /// What was wrong.
    pub reason: String,
}

impl IncomingResponse {
    /// The response's kind.
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::KeysUpload(_) => RequestKind::KeysUpload,
            Self::KeysQuery(_) => RequestKind::KeysQuery,
            Self::KeysClaim(_) => RequestKind::KeysClaim,
            Self::ToDevice(_) => RequestKind::ToDevice,
            Self::SignatureUpload(_) => RequestKind::SignatureUpload,
            Self::SigningKeysUpload(_) => RequestKind::SigningKeysUpload,
            Self::KeysChanges(_) => RequestKind::KeysChanges,
            Self::KeysBackup(_) => RequestKind::KeysBackup,
            Self::BackupVersionCreate(_) => RequestKind::BackupVersionCreate,
        }
    }

    /// Reads a successful (200) response body of a request of `kind`.
    pub fn from_json(kind: RequestKind, body: &[u8]) -> Result<Self, ResponseParseError> {
        let error = |e: &dyn std::fmt::Display| ResponseParseError { kind, reason: e.to_string() };
        let response = http::Response::builder().status(200).body(body).map_err(|e| error(&e))?;
        Ok(match kind {
            RequestKind::KeysUpload => {
                Self::KeysUpload(upload_keys::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?)
            }
            RequestKind::KeysQuery => {
                Self::KeysQuery(get_keys::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?)
            }
            RequestKind::KeysClaim => {
                Self::KeysClaim(claim_keys::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?)
            }
            RequestKind::ToDevice => Self::ToDevice(
                send_event_to_device::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?,
            ),
            RequestKind::SignatureUpload => Self::SignatureUpload(
                upload_signatures::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?,
            ),
            RequestKind::SigningKeysUpload => Self::SigningKeysUpload(
                upload_signing_keys::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?,
            ),
            RequestKind::KeysChanges => Self::KeysChanges(
                get_key_changes::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?,
            ),
            RequestKind::KeysBackup => Self::KeysBackup(
                add_backup_keys::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?,
            ),
            RequestKind::BackupVersionCreate => Self::BackupVersionCreate(
                create_backup_version::v3::Response::try_from_http_response(response).map_err(|e| error(&e))?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{OwnedUserId, events::ToDeviceEventType};

    #[test]
    fn keys_query_is_the_v3_json() {
        let mut request = get_keys::v3::Request::new();
        request.device_keys.insert(OwnedUserId::try_from("@bob:example.org").unwrap(), vec![]);
        let request = OutgoingRequest { request_id: "r1".into(), request: Request::KeysQuery(request) };
        assert_eq!(request.method(), "POST");
        assert_eq!(request.path().unwrap(), "/_matrix/client/v3/keys/query");
        let body: serde_json::Value = serde_json::from_str(&request.body_json().unwrap()).unwrap();
        assert_eq!(body, serde_json::json!({"device_keys": {"@bob:example.org": []}}));
    }

    #[test]
    fn keys_changes_is_a_get_with_the_tokens_in_the_query() {
        let request = get_key_changes::v3::Request::new("s1".into(), "s9".into());
        let request = OutgoingRequest { request_id: "r1".into(), request: Request::KeysChanges(request) };
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path().unwrap(), "/_matrix/client/v3/keys/changes?from=s1&to=s9");
    }

    #[test]
    fn to_device_path_carries_type_and_transaction_id() {
        let request = send_event_to_device::v3::Request::new_raw(
            ToDeviceEventType::from("m.room.encrypted"),
            ruma::OwnedTransactionId::from("abc"),
            BTreeMap::new(),
        );
        let request = OutgoingRequest { request_id: "abc".into(), request: Request::ToDevice(request) };
        assert_eq!(request.method(), "PUT");
        assert_eq!(request.path().unwrap(), "/_matrix/client/v3/sendToDevice/m.room.encrypted/abc");
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert!(IncomingResponse::from_json(RequestKind::KeysUpload, b"{").is_err());
        assert!(IncomingResponse::from_json(RequestKind::KeysUpload, b"{\"one_time_key_counts\": 5}").is_err());
        let ok = IncomingResponse::from_json(RequestKind::KeysUpload, b"{\"one_time_key_counts\": {}}").unwrap();
        assert_eq!(ok.kind(), RequestKind::KeysUpload);
    }
}
