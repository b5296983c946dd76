//! Command-line and environment configuration, validated into a [`Config`].

use std::net::SocketAddr;

use ari_client::cli::AriArgs;
use clap::Parser;

/// Flags as typed by the operator; [`Args::validate`] turns them into a [`Config`].
#[derive(Debug, Parser)]
#[command(
    name = "voiceai-gateway",
    version,
    about = "Bridge inbound Asterisk calls to an AI voice backend"
)]
pub struct Args {
    /// How to reach Asterisk's ARI.
    #[command(flatten)]
    pub ari: AriArgs,
    /// Stasis application that receives the inbound calls (extensions.conf INBOUND_APP).
    #[arg(long, env = "VOICEAI_APP", default_value = "voiceai")]
    pub app: String,
    /// Address of the gateway's REST API and monitoring WebSocket.
    #[arg(long, env = "VOICEAI_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// WebSocket URL of the AI voice backend (ws:// or wss://).
    #[arg(
        long,
        env = "VOICEAI_BACKEND_URL",
        default_value = "ws://127.0.0.1:8765/"
    )]
    pub backend_url: String,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach ARI.
    pub ari: AriArgs,
    /// Stasis application name.
    pub app: String,
    /// REST API address.
    pub listen: SocketAddr,
    /// Backend WebSocket URL.
    pub backend_url: String,
}

/// A configuration value that cannot work, named with the flag that carries it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A URL with the wrong scheme.
    #[error("{flag} must start with {expected}, got {value:?}")]
    Scheme {
        /// The flag.
        flag: &'static str,
        /// Accepted schemes.
        expected: &'static str,
        /// What was given.
        value: String,
    },
    /// An empty or malformed application name.
    #[error(
        "--app must be a non-empty Stasis application name without commas or spaces, got {0:?}"
    )]
    AppName(String),
}

impl Args {
    /// Checks the flags that parsing alone cannot.
    ///
    /// # Errors
    /// The first flag whose value cannot work.
    pub fn validate(self) -> Result<Config, ConfigError> {
        check_scheme(
            "--ari-url",
            &self.ari.url,
            &["http://", "https://"],
            "http:// or https://",
        )?;
        check_scheme(
            "--backend-url",
            &self.backend_url,
            &["ws://", "wss://"],
            "ws:// or wss://",
        )?;
        if self.app.is_empty() || self.app.contains([',', ' ', '/', '?', '&']) {
            return Err(ConfigError::AppName(self.app));
        }
        Ok(Config {
            ari: self.ari,
            app: self.app,
            listen: self.listen,
            backend_url: self.backend_url,
        })
    }
}

fn check_scheme(
    flag: &'static str,
    value: &str,
    schemes: &[&str],
    expected: &'static str,
) -> Result<(), ConfigError> {
    if schemes.iter().any(|s| value.starts_with(s)) {
        Ok(())
    } else {
        Err(ConfigError::Scheme {
            flag,
            expected,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("voiceai-gateway").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn defaults_reach_the_lab() {
        let config = parse(&[]).validate().unwrap();
        assert_eq!(config.ari.url, "http://127.0.0.1:8088");
        assert_eq!(config.app, "voiceai");
        assert!(config.listen.ip().is_loopback());
    }

    #[test]
    fn bad_values_name_their_flag() {
        let error = parse(&["--backend-url", "http://x"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("--backend-url"), "{error}");
        let error = parse(&["--app", "a,b"]).validate().unwrap_err().to_string();
        assert!(error.contains("--app"), "{error}");
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", parse(&["--ari-password", "hunter22"]));
        assert!(!shown.contains("hunter22"), "{shown}");
    }
}
