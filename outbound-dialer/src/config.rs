//! Command-line and environment configuration of a campaign, validated into a [`Config`].

use std::num::NonZeroU32;
use std::path::PathBuf;

use ari_client::cli::AriArgs;
use clap::Parser;

/// Flags as typed by the operator; [`Args::validate`] turns them into a [`Config`].
#[derive(Debug, Parser)]
#[command(
    name = "outbound-dialer",
    version,
    about = "Dial a campaign's numbers through a PJSIP trunk"
)]
pub struct Args {
    /// How to reach Asterisk's ARI.
    #[command(flatten)]
    pub ari: AriArgs,
    /// File with the numbers to dial, one per line.
    #[arg(long, env = "DIALER_NUMBERS", default_value = "numbers.txt")]
    pub numbers: PathBuf,
    /// PJSIP endpoint of the carrier trunk: calls go to PJSIP/NUMBER@TRUNK.
    #[arg(long, env = "DIALER_TRUNK", default_value = "trunk")]
    pub trunk: String,
    /// Where answered calls are bridged to.
    #[arg(long, env = "DIALER_TARGET", default_value = "Local/777@default")]
    pub target: String,
    /// Calls in progress at most.
    #[arg(long, env = "DIALER_MAX_CONCURRENT", default_value = "10")]
    pub max_concurrent: NonZeroU32,
    /// Stasis application of this campaign.
    #[arg(long, env = "DIALER_APP", default_value = "outbound-dialer")]
    pub app: String,
}

/// Validated campaign configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach ARI.
    pub ari: AriArgs,
    /// Numbers file.
    pub numbers: PathBuf,
    /// Trunk endpoint name.
    pub trunk: String,
    /// Bridge target dial string.
    pub target: String,
    /// Concurrency limit.
    pub max_concurrent: NonZeroU32,
    /// Stasis application name.
    pub app: String,
}

/// A configuration value that cannot work, named with the flag that carries it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that is empty or has characters that break a dial string.
    #[error("{flag} {problem}, got {value:?}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        problem: &'static str,
        /// What was given.
        value: String,
    },
}

impl Args {
    /// Checks the flags that parsing alone cannot.
    ///
    /// # Errors
    /// The first flag whose value cannot work.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |flag, problem, value: &str| ConfigError::Invalid {
            flag,
            problem,
            value: value.to_owned(),
        };
        if !self.ari.url.starts_with("http://") && !self.ari.url.starts_with("https://") {
            return Err(invalid(
                "--ari-url",
                "must start with http:// or https://",
                &self.ari.url,
            ));
        }
        if self.trunk.is_empty() || self.trunk.contains(['/', '@', '&', ',']) {
            return Err(invalid(
                "--trunk",
                "must be a PJSIP endpoint name",
                &self.trunk,
            ));
        }
        if !self.target.contains('/') {
            return Err(invalid(
                "--target",
                "must be a dial string like Local/777@default",
                &self.target,
            ));
        }
        if self.app.is_empty() || self.app.contains([',', ' ', '/', '?', '&']) {
            return Err(invalid(
                "--app",
                "must be a Stasis application name without commas or spaces",
                &self.app,
            ));
        }
        Ok(Config {
            ari: self.ari,
            numbers: self.numbers,
            trunk: self.trunk,
            target: self.target,
            max_concurrent: self.max_concurrent,
            app: self.app,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("outbound-dialer").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_reach_the_lab() {
        let config = parse(&[]).unwrap().validate().unwrap();
        assert_eq!(config.trunk, "trunk");
        assert_eq!(config.target, "Local/777@default");
        assert_eq!(config.max_concurrent.get(), 10);
    }

    #[test]
    fn bad_values_name_their_flag() {
        let error = parse(&["--trunk", "a/b"])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("--trunk"), "{error}");
        let error = parse(&["--max-concurrent", "0"]).unwrap_err().to_string();
        assert!(error.contains("--max-concurrent"), "{error}");
    }
}
