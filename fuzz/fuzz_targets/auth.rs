//! Authentication inputs: principals as ACLs and configurations name them
//! (`Principal::parse`), and the `authorization` header of a gRPC or HTTP request as a broker
//! with authentication on reads it (`Auth::authenticate_parts`: Basic and Bearer, against one
//! user and one API key), with or without a certificate's name beside it.

#![no_main]

use std::sync::OnceLock;

use eddy_auth::{ApiKey, Principal, ScramCredential};
use eddy_broker::BrokerConfig;
use eddy_broker::auth::Auth;
use eddy_controller::SecurityState;
use libfuzzer_sys::fuzz_target;

/// The user's SCRAM iterations: few, so a guessed password costs microseconds, not the
/// milliseconds a real credential's 4,096 do.
const ITERATIONS: u32 = 2;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let (auth, security) = broker();
    match selector % 3 {
        0 => {
            if let Ok(principal) = Principal::parse(text) {
                let again = Principal::parse(&principal.to_string()).expect("a parsed principal parses again");
                assert_eq!(principal, again);
            }
        }
        1 => {
            let _ = auth.authenticate_parts(Some(text), None, security);
        }
        _ => {
            // The header, then a certificate's name after the first newline.
            let (header, name) = text.split_once('\n').unwrap_or((text, ""));
            let header = (!header.is_empty()).then_some(header);
            if let Ok(caller) = auth.authenticate_parts(header, Some(name), security) {
                assert!(!caller.principal.to_string().is_empty());
            }
        }
    }
});

/// A broker with authentication on, the user `alice` (password `secret`) and an API key whose
/// token is `token` for `User:ci`.
fn broker() -> &'static (Auth, SecurityState) {
    static BROKER: OnceLock<(Auth, SecurityState)> = OnceLock::new();
    BROKER.get_or_init(|| {
        let mut config = BrokerConfig::default();
        config.auth.enabled = true;
        config.auth.superusers = vec!["User:admin".into()];
        config.auth.api_keys = vec![ApiKey {
            principal: "User:ci".into(),
            sha256: "3c469e9d6c5875d37a43f353d4f88e61fcf812c66eee3457465a40b0da4153e0".into(),
        }];
        let mut security = SecurityState::default();
        security.users.insert("alice".into(), ScramCredential::with_salt("secret", b"salt".to_vec(), ITERATIONS));
        (Auth::new(&config), security)
    })
}
