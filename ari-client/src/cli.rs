//! Command-line flags for reaching ARI, shared by programs built on clap.

use crate::Credentials;

/// `--ari-url`, `--ari-username`, `--ari-password` with `ARI_*` environment fallbacks and
/// defaults that reach the lab of `asterisk_conf/`. Flatten it into a program's arguments.
#[derive(Clone, clap::Args)]
pub struct AriArgs {
    /// ARI base URL (http:// or https://), without /ari.
    #[arg(
        long = "ari-url",
        env = "ARI_URL",
        default_value = "http://127.0.0.1:8088"
    )]
    pub url: String,
    /// ARI user (ari.conf).
    #[arg(
        long = "ari-username",
        env = "ARI_USERNAME",
        default_value = "asterisk"
    )]
    pub username: String,
    /// ARI password (ari.conf). Prefer the environment variable: flags show up in `ps`.
    #[arg(
        long = "ari-password",
        env = "ARI_PASSWORD",
        default_value = "asterisk",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub password: String,
}

impl AriArgs {
    /// The credentials given.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.username.clone(), self.password.clone())
    }
}

impl std::fmt::Debug for AriArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AriArgs")
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
