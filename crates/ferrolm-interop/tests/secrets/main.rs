//! Secret storage, secret gossip and dehydrated devices between ferrolm-machine and
//! matrix-sdk-crypto 0.18, each machine driven through the in-process test homeserver:
//!
//! - secret storage written by one (key description, secrets, default key, as global account
//!   data) and read by the other from the account data's JSON, with a recovery key and with a
//!   passphrase, both directions; the secrets read are imported and checked against the
//!   published public keys;
//! - a secret gossiped (`m.secret.request` / `m.secret.send`) between a ferrolm device and an
//!   msc device of the same user that verified each other, both directions;
//! - a dehydrated device (MSC3814) created by one, sent a room key, and rehydrated by the
//!   other, both directions; an msc sender shares with a ferrolm-created dehydrated device
//!   (msc requires it cross-signed by its owner).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::cloned_ref_to_slice_refs)]

#[allow(dead_code)]
#[path = "../machine/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../machine/msc.rs"]
mod msc;

mod dehydrated;
mod gossip;
mod storage;

use std::borrow::Cow;
use std::collections::BTreeMap;

use ferrolm::pk::PkDecryption;
use ferrolm_machine::ruma::api::auth_scheme::{AuthScheme, SendAccessToken};
use ferrolm_machine::ruma::api::client::keys::upload_signing_keys;
use ferrolm_machine::ruma::api::path_builder::PathBuilder;
use ferrolm_machine::ruma::api::{OutgoingRequest, SupportedVersions};
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_machine::{AccountData, AccountDataUpdate};
use ferrolm_store::{BackupRecord, Changes};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, memory_store};

use crate::msc::{MscDevice, block_on};

/// The one user of the secret scenarios.
pub const ALICE: &str = "@alice:test.server";
/// The seed of the ferrolm side's backup key.
pub const BACKUP_SEED: [u8; 32] = [0x42; 32];

pub fn alice() -> OwnedUserId {
    OwnedUserId::try_from(ALICE).unwrap()
}

/// A ferrolm device of Alice with her keys uploaded.
pub fn fe_device(hs: &mut Homeserver, device: &str, seed: u64) -> TestDevice {
    let mut fe = TestDevice::new(hs, ALICE, device, seed, 1_000_000).unwrap();
    fe.settle(hs, 1).unwrap();
    fe
}

/// Gives a ferrolm device the backup key of `BACKUP_SEED` (version "1"), as the backup module
/// would store it, and reopens its machine.
pub fn fe_with_backup_key(fe: TestDevice, rng_seed: u64) -> TestDevice {
    let changes = Changes {
        backup: Some(BackupRecord {
            version: Some("1".into()),
            decryption_key: Some(PkDecryption::from_bytes(&BACKUP_SEED)),
        }),
        ..Changes::default()
    };
    memory_store(fe.backend.clone()).unwrap().save_changes(&changes).unwrap();
    fe.restart(rng_seed).unwrap()
}

/// Sends account data updates as ferrolm's client would (`PUT …/account_data/{type}`); returns
/// the account data after.
pub fn write_account_data(hs: &mut Homeserver, fe: &TestDevice, updates: &[AccountDataUpdate]) -> AccountData {
    let user = fe.machine.user_id().to_owned();
    for update in updates {
        let http = update.to_http_request("https://test.server", "token", &user).unwrap();
        let response = hs.handle(&user, fe.machine.device_id(), http);
        assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    }
    hs.global_account_data(&user)
}

/// Runs matrix-sdk-crypto's cross-signing bootstrap to the end: its keys upload, its signing
/// keys upload (`POST /keys/device_signing/upload`, answering the password stage of UIA) and its
/// signature upload.
pub fn msc_bootstrap_cross_signing(hs: &mut Homeserver, msc: &MscDevice) {
    let requests = block_on(msc.machine.bootstrap_cross_signing(false)).unwrap();
    if let Some(upload) = &requests.upload_keys_req {
        msc.send(hs, upload);
    }
    let keys = &requests.upload_signing_keys_req;
    let raw = |k: &Option<_>| k.as_ref().map(|k| Raw::new(k).unwrap().cast_unchecked());
    let mut request = upload_signing_keys::v3::Request::new();
    request.master_key = raw(&keys.master_key);
    request.self_signing_key = raw(&keys.self_signing_key);
    request.user_signing_key = raw(&keys.user_signing_key);
    let (user, device) = msc.id();
    let first = hs.handle(&user, &device, versioned_http(request.clone()));
    if first.status() == 401 {
        let session = hs.last_uia_session().unwrap();
        request.auth = Some(ferrolm_test_homeserver::driver::password_auth(&user, &session).unwrap());
        let second = hs.handle(&user, &device, versioned_http(request));
        assert_eq!(second.status(), 200, "{}", String::from_utf8_lossy(second.body()));
    } else {
        assert_eq!(first.status(), 200, "{}", String::from_utf8_lossy(first.body()));
    }
    let signatures = versioned_http(requests.upload_signatures_req.clone());
    let response = hs.handle(&user, &device, signatures);
    assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
}

/// The ferrolm device and the msc device of Alice learn each other's devices.
pub fn meet(hs: &mut Homeserver, fe: &mut TestDevice, msc: &mut MscDevice) {
    let alice = alice();
    fe.machine.update_tracked_users(&[alice.clone()]).unwrap();
    msc.track(&[alice]);
    for _ in 0..2 {
        fe.settle(hs, 1).unwrap();
        msc.settle(hs, 1);
    }
}

/// Serializes a ruma request of a versioned endpoint as a client sends it.
pub fn versioned_http<R>(request: R) -> http::Request<Vec<u8>>
where
    R: for<'a> OutgoingRequest<
            Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
            PathBuilder: PathBuilder<Input<'a> = Cow<'a, SupportedVersions>>,
        >,
{
    let versions = SupportedVersions::from_parts(&["v1.1".to_owned()], &BTreeMap::new());
    request.try_into_http_request::<Vec<u8>>(BASE, SendAccessToken::Always("token"), Cow::Borrowed(&versions)).unwrap()
}

pub const BASE: &str = "https://test.server";

pub fn device_id(id: &str) -> OwnedDeviceId {
    OwnedDeviceId::from(id)
}
