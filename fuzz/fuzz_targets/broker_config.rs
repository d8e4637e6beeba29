//! The broker's configuration file as `eddy server` loads it: TOML text merged over the
//! defaults (figment, as `load_config` does) and validated. Whatever the file says, loading
//! must end in a configuration or an error naming the field, never a panic; a configuration
//! that validates must read back from its own TOML.

#![no_main]

use eddy_broker::BrokerConfig;
use figment::Figment;
use figment::providers::{Format as _, Serialized, Toml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = load(text) else { return };
    if config.validate().is_err() {
        return;
    }
    let _ = eddy_broker::auth::Auth::new(&config);
    // figment also takes numbers written as strings, so a value may be one TOML cannot print
    // (an integer above i64::MAX): then there is nothing to read back.
    let Ok(printed) = toml::to_string(&config) else { return };
    let again = load(&printed).expect("a printed configuration loads");
    assert_eq!(config, again, "a configuration survives being printed and loaded");
});

fn load(text: &str) -> Result<BrokerConfig, figment::Error> {
    Figment::from(Serialized::defaults(BrokerConfig::default())).merge(Toml::string(text)).extract()
}
