//! ARI user credentials, kept out of logs and `Debug` output.

use std::fmt;

use base64::Engine as _;

/// An ARI user (ari.conf `type=user`) and its password.
///
/// `Debug` shows the user name only: credentials end up in logs through `{:?}` more
/// often than through any deliberate print.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Credentials of `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The value of an HTTP `Authorization: Basic` header for these credentials.
    pub fn basic_authorization(&self) -> String {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password));
        format!("Basic {token}")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let credentials = Credentials::new("asterisk", "s3cret-pass");
        let shown = format!("{credentials:?} {credentials:#?}");
        assert!(!shown.contains("s3cret-pass"), "{shown}");
        assert!(shown.contains("asterisk"));
    }

    #[test]
    fn basic_authorization_is_rfc7617() {
        // RFC 7617 section 2 example.
        assert_eq!(
            Credentials::new("Aladdin", "open sesame").basic_authorization(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
