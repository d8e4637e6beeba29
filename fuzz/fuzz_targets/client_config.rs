//! The client configuration file (`eddy --client-config`, `eddy_client::ClientFile`): TOML
//! text, then its brokers and credentials as the CLI takes them. Whatever the file says,
//! reading it ends in settings or an error naming the problem, never a panic; a secret never
//! shows in the settings' debug form.

#![no_main]

use eddy_client::{Client, ClientConfig, ClientFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = ClientFile::parse(text) else { return };
    let shown = format!("{file:?}");
    for secret in [&file.password, &file.token].into_iter().flatten() {
        if secret.len() >= 8 {
            assert!(!shown.contains(secret.as_str()), "a secret shows: {shown}");
        }
    }
    let credentials = file.credentials();
    if let Some(brokers) = file.brokers {
        let config = ClientConfig { credentials: credentials.ok().flatten(), ..ClientConfig::default() };
        // The bootstrap addresses are checked here; nothing connects before first use.
        let _ = Client::new(brokers, config);
    }
});
