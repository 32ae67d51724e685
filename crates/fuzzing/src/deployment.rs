//! The deploy answer: what tier 1 (or a cloudlet) answers a deploy request.

use sinfonia::deploy::read_answer;
use sinfonia::deployment::Deployment;
use sinfonia::keys::KeyPair;
use uuid::Uuid;

/// The backend the fuzzed answers are for (seeds use it).
pub const BACKEND: Uuid = Uuid::from_u128(0x835a_9728_a1f7_4d0f_82f8_cd0d_a883_8673);

/// The private key of the client the fuzzed answers are for (seeds carry
/// its public key).
pub const CLIENT_PRIVATE_KEY: [u8; 32] = [7; 32];

/// HTTP statuses, chosen by the first byte of the input.
const STATUSES: [u16; 8] = [200, 200, 200, 201, 404, 422, 500, 503];

/// Media types, chosen by the second byte of the input.
const CONTENT_TYPES: [&str; 6] = [
    "application/json",
    "application/json",
    "",
    "application/problem+json",
    "text/html",
    "text/plain",
];

/// Reads `data` as a deploy answer: its first byte picks the HTTP status,
/// its second the media type, the rest is the body, checked as the tier-3
/// client checks it for [`BACKEND`] and the key of [`CLIENT_PRIVATE_KEY`].
/// The body is also read as the wire type alone, which must survive being
/// written back (cloudlets write it, clients read it).
///
/// # Panics
///
/// When a deployment read from the wire changes when written back.
pub fn deployment(data: &[u8]) {
    let [status, content_type, body @ ..] = data else {
        return;
    };
    let status = STATUSES[usize::from(*status) % STATUSES.len()];
    let content_type = CONTENT_TYPES[usize::from(*content_type) % CONTENT_TYPES.len()];
    let key = KeyPair::from_private_bytes(CLIENT_PRIVATE_KEY);
    if let Err(error) = read_answer(
        "http://tier1.test",
        BACKEND,
        &key,
        status,
        content_type,
        body,
    ) {
        // Every error must be printable: users see it.
        let _ = error.to_string();
    }
    if let Ok(list) = serde_json::from_slice::<Vec<Deployment>>(body) {
        let written = serde_json::to_vec(&list).unwrap_or_default();
        match serde_json::from_slice::<Vec<Deployment>>(&written) {
            Ok(again) => assert_eq!(again, list, "deployments changed when written back"),
            Err(error) => panic!("deployments written back are refused: {error}"),
        }
    }
}
