//! The client configuration file (`eddy --client-config FILE`, or any program using this
//! library): TOML with the brokers, credentials and TLS files, every field optional.
//!
//! ```toml
//! brokers = ["broker-1:9092", "broker-2:9092"]
//! user = "alice"
//! password = "..."          # or: token = "eddy_..."
//! tls_ca = "/etc/eddy/ca.pem"
//! ```

use std::path::{Path, PathBuf};

/// Largest client configuration file read.
pub const CLIENT_FILE_MAX_BYTES: u64 = 1 << 20;

/// A client configuration file's settings. Unknown fields are refused, naming them.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// Bootstrap brokers (`HOST:PORT`).
    pub brokers: Option<Vec<String>>,
    /// A user, with `password`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// An API key, instead of a user.
    pub token: Option<String>,
    /// The CA the brokers' certificates chain to (TLS on).
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and its key, for brokers that authenticate clients by certificate.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl std::fmt::Debug for ClientFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<hidden>");
        f.debug_struct("ClientFile")
            .field("brokers", &self.brokers)
            .field("user", &self.user)
            .field("password", &hidden(&self.password))
            .field("token", &hidden(&self.token))
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

impl ClientFile {
    /// The settings in `text`; the error names the line and field at fault.
    pub fn parse(text: &str) -> Result<ClientFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The settings in the file at `path` (at most [`CLIENT_FILE_MAX_BYTES`]).
    pub fn load(path: &Path) -> Result<ClientFile, String> {
        use std::io::Read as _;
        let file =
            std::fs::File::open(path).map_err(|e| format!("cannot read the client config {}: {e}", path.display()))?;
        let mut text = String::new();
        file.take(CLIENT_FILE_MAX_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the client config {}: {e}", path.display()))?;
        if text.len() as u64 > CLIENT_FILE_MAX_BYTES {
            return Err(format!("the client config {} is larger than {CLIENT_FILE_MAX_BYTES} bytes", path.display()));
        }
        Self::parse(&text).map_err(|e| format!("invalid client config {}: {e}", path.display()))
    }

    /// The credentials the file gives, if any: a user with a password, or a token. A user
    /// without a password, or a user and a token, is an error naming the problem.
    pub fn credentials(&self) -> Result<Option<crate::Credentials>, String> {
        credentials(self.user.clone(), self.password.clone(), self.token.clone())
    }
}

/// Credentials from a user, password and token given (from flags, environment or a file).
pub fn credentials(
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
) -> Result<Option<crate::Credentials>, String> {
    match (user, password, token) {
        (Some(_), _, Some(_)) => Err("give a user or a token, not both".into()),
        (Some(user), Some(password), None) => Ok(Some(crate::Credentials::Password { user, password })),
        (Some(user), None, None) => {
            Err(format!("user {user} needs a password (EDDY_PASSWORD, --password-file or --password)"))
        }
        (None, _, Some(token)) => Ok(Some(crate::Credentials::Token(token))),
        (None, _, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_and_name_what_is_wrong() {
        let file = ClientFile::parse("brokers = [\"a:1\"]\nuser = \"alice\"\npassword = \"pw\"\n").unwrap();
        assert_eq!(file.brokers.as_deref(), Some(&["a:1".to_string()][..]));
        assert!(matches!(file.credentials(), Ok(Some(crate::Credentials::Password { .. }))));
        assert!(!format!("{file:?}").contains("pw"), "the password shows: {file:?}");
        let error = ClientFile::parse("brokerz = []").unwrap_err();
        assert!(error.contains("brokerz"), "{error}");
        let error = ClientFile::parse("user = \"alice\"\ntoken = \"t\"").unwrap().credentials().unwrap_err();
        assert!(error.contains("not both"), "{error}");
        let error = ClientFile::parse("user = \"alice\"").unwrap().credentials().unwrap_err();
        assert!(error.contains("needs a password"), "{error}");
    }
}
