#![no_main]
use ferrolm::sas::SasMac;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (alice, bob) = ferrolm_fuzz::sas_fixture();
    let [input, info, mac] = ferrolm_fuzz::split::<3>(data);
    let (input, info, mac) = (ferrolm_fuzz::text(input), ferrolm_fuzz::text(info), ferrolm_fuzz::text(mac));
    if let Ok(mac) = SasMac::from_base64(&mac) {
        let verified = bob.verify_mac(&input, &info, &mac).is_ok();
        assert_eq!(verified, alice.calculate_mac(&input, &info) == mac);
    }
    let legacy = bob.verify_mac_invalid_base64(&input, &info, &mac).is_ok();
    assert_eq!(legacy, alice.calculate_mac_invalid_base64(&input, &info) == *mac);
    let _ = alice.bytes(&info).emoji_indices();
});
